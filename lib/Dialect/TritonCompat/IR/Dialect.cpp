//===- Dialect.cpp - Triton 3.6 `tt` dialect, re-declared -----------------===//

#include "balancekv/Dialect/TritonCompat/IR/Dialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/Interfaces/FunctionImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace balancekv::tt;

#include "balancekv/Dialect/TritonCompat/IR/TritonDialect.cpp.inc"
#include "balancekv/Dialect/TritonCompat/IR/TritonEnums.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "balancekv/Dialect/TritonCompat/IR/TritonTypes.cpp.inc"

void TTDialect::initialize() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "balancekv/Dialect/TritonCompat/IR/TritonTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "balancekv/Dialect/TritonCompat/IR/TritonOps.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// !tt.ptr<T> / !tt.ptr<T, addrspace>
//===----------------------------------------------------------------------===//

Type PointerType::parse(AsmParser &parser) {
  Type pointee;
  int addressSpace = 1;
  if (parser.parseLess() || parser.parseType(pointee))
    return {};
  if (succeeded(parser.parseOptionalComma()) &&
      parser.parseInteger(addressSpace))
    return {};
  if (parser.parseGreater())
    return {};
  return PointerType::get(pointee, addressSpace);
}

void PointerType::print(AsmPrinter &printer) const {
  printer << "<" << getPointeeType();
  if (getAddressSpace() != 1)
    printer << ", " << getAddressSpace();
  printer << ">";
}

Type balancekv::tt::getPointeeType(Type ptrLike) {
  if (auto t = dyn_cast<RankedTensorType>(ptrLike))
    if (auto p = dyn_cast<PointerType>(t.getElementType()))
      return t.clone(p.getPointeeType());
  if (auto p = dyn_cast<PointerType>(ptrLike))
    return p.getPointeeType();
  return {};
}

Type balancekv::tt::getI1SameShape(Type type) {
  auto i1 = IntegerType::get(type.getContext(), 1);
  if (auto t = dyn_cast<RankedTensorType>(type))
    return t.clone(i1);
  return i1;
}

Type balancekv::tt::tensorPtrBaseType(Type blockPtr) {
  auto p = dyn_cast<PointerType>(blockPtr);
  if (!p)
    return {};
  auto t = dyn_cast<RankedTensorType>(p.getPointeeType());
  return PointerType::get(t ? t.getElementType() : p.getPointeeType(),
                          p.getAddressSpace());
}

namespace {

ArrayRef<int64_t> shapeOf(Type t) {
  if (auto r = dyn_cast<RankedTensorType>(t))
    return r.getShape();
  return {};
}

} // namespace

//===----------------------------------------------------------------------===//
// tt.func / tt.return / tt.call
//===----------------------------------------------------------------------===//

ParseResult FuncOp::parse(OpAsmParser &parser, OperationState &result) {
  auto buildFuncType = [](Builder &b, ArrayRef<Type> args,
                          ArrayRef<Type> results,
                          function_interface_impl::VariadicFlag,
                          std::string &) {
    return b.getFunctionType(args, results);
  };
  return function_interface_impl::parseFunctionOp(
      parser, result, /*allowVariadic=*/false,
      getFunctionTypeAttrName(result.name), buildFuncType,
      getArgAttrsAttrName(result.name), getResAttrsAttrName(result.name));
}

void FuncOp::print(OpAsmPrinter &printer) {
  function_interface_impl::printFunctionOp(
      printer, *this, /*isVariadic=*/false, getFunctionTypeAttrName(),
      getArgAttrsAttrName(), getResAttrsAttrName());
}

LogicalResult ReturnOp::verify() {
  auto func = (*this)->getParentOfType<FuncOp>();
  ArrayRef<Type> results = func.getResultTypes();
  if (getNumOperands() != results.size())
    return emitOpError("has ")
           << getNumOperands() << " operands, but the enclosing function ("
           << func.getName() << ") returns " << results.size();
  for (auto [v, t] : llvm::zip(getOperands(), results))
    if (v.getType() != t)
      return emitOpError("type of return operand (")
             << v.getType() << ") does not match the function result type ("
             << t << ")";
  return success();
}

LogicalResult CallOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto fn = symbolTable.lookupNearestSymbolFrom<FuncOp>(*this, getCalleeAttr());
  if (!fn)
    return emitOpError() << "'" << getCallee()
                         << "' does not reference a valid tt.func";
  if (TypeRange(fn.getArgumentTypes()) != TypeRange(getOperands().getTypes()) ||
      TypeRange(fn.getResultTypes()) != TypeRange(getResultTypes()))
    return emitOpError("operand or result types do not match the callee");
  return success();
}

//===----------------------------------------------------------------------===//
// Verifiers and type inference
//===----------------------------------------------------------------------===//

LogicalResult MakeRangeOp::verify() {
  int64_t start = getStartAttr().getInt(), end = getEndAttr().getInt();
  if (start >= end)
    return emitOpError("start must be less than end");
  auto t = cast<RankedTensorType>(getType());
  if (t.getRank() != 1 || t.getDimSize(0) != end - start)
    return emitOpError("result must be a 1-D tensor of end - start elements");
  return success();
}

LogicalResult BroadcastOp::verify() {
  ArrayRef<int64_t> src = shapeOf(getSrc().getType()),
                    dst = shapeOf(getType());
  if (src.size() != dst.size())
    return emitOpError("source rank ")
           << src.size() << " differs from result rank " << dst.size();
  for (auto [s, d] : llvm::zip(src, dst))
    if (s != 1 && s != d)
      return emitOpError("can only broadcast dims of size 1, got ")
             << s << " -> " << d;
  return success();
}

LogicalResult ExpandDimsOp::verify() {
  ArrayRef<int64_t> src = shapeOf(getSrc().getType()),
                    dst = shapeOf(getType());
  int64_t axis = getAxis();
  if (axis < 0 || axis > int64_t(src.size()))
    return emitOpError("axis ") << axis << " out of range";
  SmallVector<int64_t> want(src.begin(), src.end());
  want.insert(want.begin() + axis, 1);
  if (ArrayRef<int64_t>(want) != dst)
    return emitOpError("result shape must be the source shape with a 1 at axis ")
           << axis;
  return success();
}

static int64_t numElements(ArrayRef<int64_t> s) {
  int64_t n = 1;
  for (int64_t x : s)
    n *= x;
  return n;
}

LogicalResult ReshapeOp::verify() {
  if (numElements(shapeOf(getSrc().getType())) != numElements(shapeOf(getType())))
    return emitOpError("source and result must have the same number of elements");
  return success();
}

LogicalResult TransOp::verify() {
  ArrayRef<int64_t> src = shapeOf(getSrc().getType()),
                    dst = shapeOf(getType());
  ArrayRef<int32_t> order = getOrder();
  if (order.size() != src.size())
    return emitOpError("order must have one entry per source dim");
  SmallVector<bool> seen(src.size(), false);
  for (auto [i, o] : llvm::enumerate(order)) {
    if (o < 0 || o >= int32_t(src.size()) || seen[o])
      return emitOpError("order must be a permutation");
    seen[o] = true;
    if (dst[i] != src[o])
      return emitOpError("result dim ") << i << " must be source dim " << o;
  }
  return success();
}

LogicalResult LoadOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, ValueRange operands,
    DictionaryAttr, OpaqueProperties, RegionRange,
    SmallVectorImpl<Type> &inferred) {
  Type t = operands.empty() ? Type() : getPointeeType(operands[0].getType());
  if (!t)
    return emitOptionalError(loc, "'tt.load' op expects a pointer operand");
  inferred.push_back(t);
  return success();
}

LogicalResult DotOp::verify() {
  ArrayRef<int64_t> a = shapeOf(getA().getType()), b = shapeOf(getB().getType()),
                    c = shapeOf(getC().getType());
  if (a.size() < 2 || a.size() != b.size() || a.size() != c.size())
    return emitOpError("operands must be tensors of one rank >= 2");
  size_t r = a.size();
  if (a[r - 1] != b[r - 2] || c[r - 2] != a[r - 2] || c[r - 1] != b[r - 1])
    return emitOpError("shapes do not form a matrix product");
  return success();
}

LogicalResult MakeTensorPtrOp::verify() {
  auto block = dyn_cast<RankedTensorType>(
      cast<PointerType>(getType()).getPointeeType());
  if (!block)
    return emitOpError("result must point to a tensor (a block pointer)");
  size_t rank = block.getRank();
  if (getShape().size() != rank || getStrides().size() != rank ||
      getOffsets().size() != rank || getOrder().size() != rank)
    return emitOpError("needs one shape, stride, offset and order entry per "
                       "block dim (")
           << rank << ")";
  return success();
}

LogicalResult ReduceOp::verify() {
  if (getSrcs().empty())
    return emitOpError("needs at least one operand");
  int64_t rank = shapeOf(getSrcs()[0].getType()).size();
  if (getAxis() < 0 || getAxis() >= rank)
    return emitOpError("axis ") << getAxis() << " out of range for rank " << rank;
  if (getNumResults() != getSrcs().size())
    return emitOpError("needs one result per operand");
  return success();
}

#define GET_OP_CLASSES
#include "balancekv/Dialect/TritonCompat/IR/TritonOps.cpp.inc"
