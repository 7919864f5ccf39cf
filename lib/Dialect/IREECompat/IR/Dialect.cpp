//===- Dialect.cpp - iree_linalg_ext.attention, re-declared ----------------===//

#include "balancekv/Dialect/IREECompat/IR/Dialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"

using namespace mlir;
using namespace balancekv::iree_linalg_ext;

#include "balancekv/Dialect/IREECompat/IR/IREELinalgExtDialect.cpp.inc"

void IREELinalgExtDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "balancekv/Dialect/IREECompat/IR/IREELinalgExtOps.cpp.inc"
      >();
}

// Both of IREE's spellings: `<indexing_maps = [...]>` (3.x) or the maps in
// an attribute dictionary (earlier), then ins(...) outs(...) {region} -> types.
ParseResult AttentionOp::parse(OpAsmParser &parser, OperationState &result) {
  Builder &b = parser.getBuilder();
  ArrayAttr maps;
  if (succeeded(parser.parseOptionalLess())) {
    if (parser.parseKeyword("indexing_maps") || parser.parseEqual() ||
        parser.parseAttribute(maps) || parser.parseGreater())
      return failure();
  }
  NamedAttrList attrs;
  if (parser.parseOptionalAttrDict(attrs))
    return failure();
  if (!maps) {
    maps = dyn_cast_or_null<ArrayAttr>(attrs.erase("indexing_maps"));
    if (!maps)
      return parser.emitError(parser.getCurrentLocation(),
                              "expected indexing_maps");
  }
  SmallVector<OpAsmParser::UnresolvedOperand> ins, outs;
  SmallVector<Type> inTypes, outTypes, resultTypes;
  SMLoc inLoc = parser.getCurrentLocation();
  if (parser.parseKeyword("ins") || parser.parseLParen() ||
      parser.parseOperandList(ins) || parser.parseColonTypeList(inTypes) ||
      parser.parseRParen())
    return failure();
  SMLoc outLoc = parser.getCurrentLocation();
  if (parser.parseKeyword("outs") || parser.parseLParen() ||
      parser.parseOperandList(outs) || parser.parseColonTypeList(outTypes) ||
      parser.parseRParen())
    return failure();
  Region *region = result.addRegion();
  if (parser.parseRegion(*region, /*arguments=*/{}))
    return failure();
  if (succeeded(parser.parseOptionalArrow()) &&
      parser.parseTypeList(resultTypes))
    return failure();
  if (parser.resolveOperands(ins, inTypes, inLoc, result.operands) ||
      parser.resolveOperands(outs, outTypes, outLoc, result.operands))
    return failure();
  result.addTypes(resultTypes);
  result.addAttributes(attrs);
  result.getOrAddProperties<Properties>().indexing_maps = maps;
  (void)b;
  return success();
}

void AttentionOp::print(OpAsmPrinter &p) {
  p << " <indexing_maps = " << getIndexingMaps() << ">";
  p.printOptionalAttrDict((*this)->getAttrs(), {"indexing_maps"});
  p << " ins(" << getInputs() << " : " << getInputs().getTypes() << ")";
  p << " outs(" << getOutputs() << " : " << getOutputs().getTypes() << ") ";
  p.printRegion(getRegion(), /*printEntryBlockArgs=*/true);
  if (getNumResults())
    p << " -> " << getResultTypes();
}

LogicalResult AttentionOp::verify() {
  const int64_t numInputs = int64_t(getOperandList().size()) - getNumResults();
  if (numInputs < 4 || numInputs > 5)
    return emitOpError() << "expects query, key, value, scale and an optional "
                            "mask before the outputs, got "
                         << numInputs << " inputs";
  if (int64_t(getIndexingMaps().size()) != numInputs + getNumResults())
    return emitOpError() << "expects one indexing map per operand";
  for (auto [out, res] : llvm::zip(getOutputs(), getResults()))
    if (out.getType() != res.getType())
      return emitOpError() << "expects results typed as the outputs";
  Block &body = getRegion().front();
  if (body.getNumArguments() != 1 ||
      !isa<YieldOp>(body.getTerminator()) ||
      body.getTerminator()->getNumOperands() != 1)
    return emitOpError() << "expects a region of one score argument yielding "
                            "one value";
  return success();
}

#define GET_OP_CLASSES
#include "balancekv/Dialect/IREECompat/IR/IREELinalgExtOps.cpp.inc"

//===----------------------------------------------------------------------===//
// tm_tensor
//===----------------------------------------------------------------------===//

#include "balancekv/Dialect/IREECompat/IR/TMTensorDialect.cpp.inc"

void balancekv::tm_tensor::TMTensorDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "balancekv/Dialect/IREECompat/IR/TMTensorOps.cpp.inc"
      >();
}

LogicalResult balancekv::tm_tensor::AttentionOp::verify() {
  if (getInputs().size() < 3 || getInputs().size() > 4)
    return emitOpError() << "expects query, key, value and an optional mask, "
                            "got "
                         << getInputs().size() << " inputs";
  if (getOutputs().size() != 1 || getResults().size() > 1 ||
      (getResults().size() == 1 &&
       getResults()[0].getType() != getOutputs()[0].getType()))
    return emitOpError() << "expects one output, typed as the result";
  return success();
}

#define GET_OP_CLASSES
#include "balancekv/Dialect/IREECompat/IR/TMTensorOps.cpp.inc"
