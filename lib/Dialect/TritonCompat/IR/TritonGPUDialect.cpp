//===- TritonGPUDialect.cpp - Triton 3.6 ttg and ttng, re-declared --------===//

#include "balancekv/Dialect/TritonCompat/IR/TritonGPUDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace balancekv;
using namespace balancekv::ttg;

#include "balancekv/Dialect/TritonCompat/IR/TritonGPUDialect.cpp.inc"
#include "balancekv/Dialect/TritonCompat/IR/TritonNvidiaGPUDialect.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "balancekv/Dialect/TritonCompat/IR/TritonGPUTypes.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "balancekv/Dialect/TritonCompat/IR/TritonGPUAttrs.cpp.inc"

namespace {
/// Aliases as Triton prints them (#blocked, #mma, #shared, #smem); slices
/// and dot operands stay inline.
struct TTGAsmInterface : OpAsmDialectInterface {
  using OpAsmDialectInterface::OpAsmDialectInterface;
  AliasResult getAlias(Attribute attr, raw_ostream &os) const override {
    auto layout = dyn_cast<LayoutAttr>(attr);
    if (!layout)
      return AliasResult::NoAlias;
    StringRef alias = llvm::StringSwitch<StringRef>(layout.getName().getValue())
                          .Case("blocked", "blocked")
                          .Case("nvidia_mma", "mma")
                          .Case("nvmma_shared", "shared")
                          .Case("swizzled_shared", "shared")
                          .Case("shared_memory", "smem")
                          .Default("");
    if (alias.empty())
      return AliasResult::NoAlias;
    os << alias;
    return AliasResult::FinalAlias;
  }
};
} // namespace

void TTGDialect::initialize() {
  addInterfaces<TTGAsmInterface>();
  addTypes<
#define GET_TYPEDEF_LIST
#include "balancekv/Dialect/TritonCompat/IR/TritonGPUTypes.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "balancekv/Dialect/TritonCompat/IR/TritonGPUAttrs.cpp.inc"
      >();
  addOperations<ConvertLayoutOp, LocalAllocOp, LocalLoadOp, LocalDeallocOp,
                MemDescIndexOp, MemDescTransOp, GlobalScratchAllocOp,
                AsyncCopyGlobalToLocalOp, AsyncCommitGroupOp, AsyncWaitOp>();
}

void ttng::TTNGDialect::initialize() {
  addOperations<ttng::WarpGroupDotOp, ttng::WarpGroupDotWaitOp,
                ttng::FenceAsyncSharedOp, ttng::InitBarrierOp,
                ttng::InvalBarrierOp, ttng::BarrierExpectOp,
                ttng::WaitBarrierOp, ttng::AsyncTMACopyGlobalToLocalOp,
                ttng::AsyncTMACopyLocalToGlobalOp, ttng::TMAStoreWaitOp,
                ttng::TensormapCreateOp, ttng::TensormapFenceproxyAcquireOp,
                ttng::ReinterpretTensorDescOp>();
}

//===----------------------------------------------------------------------===//
// Layouts: #ttg.<name> or #ttg.<name><{param = value, ...}>
//===----------------------------------------------------------------------===//

Attribute TTGDialect::parseAttribute(DialectAsmParser &parser, Type) const {
  StringRef name;
  if (parser.parseKeyword(&name))
    return {};
  SmallVector<Attribute> keys, values;
  if (succeeded(parser.parseOptionalLess())) {
    auto entry = [&]() -> ParseResult {
      std::string key;
      Attribute value;
      if (parser.parseKeywordOrString(&key) || parser.parseEqual() ||
          parser.parseAttribute(value))
        return failure();
      keys.push_back(StringAttr::get(getContext(), key));
      values.push_back(value);
      return success();
    };
    if (parser.parseCommaSeparatedList(AsmParser::Delimiter::Braces, entry) ||
        parser.parseGreater())
      return {};
  }
  return LayoutAttr::get(getContext(), StringAttr::get(getContext(), name),
                         ArrayAttr::get(getContext(), keys),
                         ArrayAttr::get(getContext(), values));
}

void TTGDialect::printAttribute(Attribute attr,
                                DialectAsmPrinter &printer) const {
  auto layout = cast<LayoutAttr>(attr);
  printer << layout.getName().getValue();
  if (layout.getKeys().empty())
    return;
  printer << "<{";
  llvm::interleaveComma(
      llvm::zip(layout.getKeys(), layout.getValues()), printer, [&](auto kv) {
        printer.printKeywordOrString(cast<StringAttr>(std::get<0>(kv)).getValue());
        printer << " = ";
        // Bare integers, as Triton writes and reads them (i64 by default;
        // its struct parsers take no type).
        auto i = dyn_cast<IntegerAttr>(std::get<1>(kv));
        if (i && i.getType().isSignlessInteger(64))
          printer << i.getValue();
        else
          printer.printAttribute(std::get<1>(kv));
      });
  printer << "}>";
}

//===----------------------------------------------------------------------===//
// !ttg.memdesc<64x64xbf16, #shared, #smem[, mutable][, 2x64x64]>
//===----------------------------------------------------------------------===//

Type MemDescType::parse(AsmParser &parser) {
  SmallVector<int64_t> shape, allocShape;
  Type elementType;
  Attribute encoding, memorySpace;
  bool mutableMemory = false;
  if (parser.parseLess() ||
      parser.parseDimensionList(shape, /*allowDynamic=*/false) ||
      parser.parseType(elementType) || parser.parseComma() ||
      parser.parseAttribute(encoding) || parser.parseComma() ||
      parser.parseAttribute(memorySpace))
    return {};
  while (succeeded(parser.parseOptionalComma())) {
    if (succeeded(parser.parseOptionalKeyword("mutable"))) {
      mutableMemory = true;
      continue;
    }
    if (parser.parseDimensionList(allocShape, /*allowDynamic=*/false,
                                  /*withTrailingX=*/false))
      return {};
  }
  if (parser.parseGreater())
    return {};
  return MemDescType::get(parser.getContext(), shape, elementType, encoding,
                          memorySpace, mutableMemory, allocShape);
}

void MemDescType::print(AsmPrinter &printer) const {
  printer << "<";
  for (int64_t d : getShape())
    printer << d << "x";
  printer << getElementType() << ", " << getEncoding() << ", "
          << getMemorySpace();
  if (getMutableMemory())
    printer << ", mutable";
  if (!getAllocShape().empty()) {
    printer << ", ";
    llvm::interleave(getAllocShape(), printer, "x");
  }
  printer << ">";
}

#define GET_OP_CLASSES
#include "balancekv/Dialect/TritonCompat/IR/TritonGPUOps.cpp.inc"
