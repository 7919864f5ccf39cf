//===- BalanceKVAttrs.cpp - #balancekv.compress_params ---------------------===//
//
// Parsing and printing go through the parameter table of CompressParams.h:
// a parameter added there is spelled, parsed and printed here with no edit.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"

#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"

using namespace mlir;
using namespace balancekv;

namespace {

ParseResult parseValue(AsmParser &p, int64_t &v) { return p.parseInteger(v); }
ParseResult parseValue(AsmParser &p, uint64_t &v) { return p.parseInteger(v); }
ParseResult parseValue(AsmParser &p, double &v) { return p.parseFloat(v); }
ParseResult parseValue(AsmParser &p, float &v) {
  double d;
  if (p.parseFloat(d))
    return failure();
  v = float(d);
  return success();
}

void printValue(AsmPrinter &p, int64_t v) { p << v; }
void printValue(AsmPrinter &p, uint64_t v) { p << v; }
void printValue(AsmPrinter &p, double v) { p.printFloat(APFloat(v)); }
void printValue(AsmPrinter &p, float v) { p.printFloat(APFloat(v)); }

} // namespace

Attribute CompressParamsAttr::parse(AsmParser &parser, Type) {
  if (parser.parseLess())
    return {};
  return parseAfterLess(parser);
}

CompressParamsAttr CompressParamsAttr::parseAfterLess(AsmParser &parser) {
  CompressionMethod method = CompressionMethod::Balance;
  CompressParams values;
  llvm::StringSet<> seen;
  auto parseEntry = [&]() -> ParseResult {
    SMLoc loc = parser.getCurrentLocation();
    StringRef name;
    if (parser.parseKeyword(&name) || parser.parseEqual())
      return failure();
    if (!seen.insert(name).second)
      return parser.emitError(loc) << "'" << name << "' given twice";
    if (name == "method") {
      StringRef spelling;
      SMLoc at = parser.getCurrentLocation();
      if (parser.parseKeyword(&spelling))
        return failure();
      std::optional<CompressionMethod> m =
          symbolizeCompressionMethod(spelling);
      if (!m)
        return parser.emitError(at)
               << "unknown method '" << spelling
               << "' (expected balance, uniform, streaming, snapkv, knorm or adaptive)";
      method = *m;
      return success();
    }
#define BALANCEKV_PARAM_PARSE(type, member, ident, dflt, doc)                  \
  if (name == #ident)                                                          \
    return parseValue(parser, values.member);
    BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_PARSE)
#undef BALANCEKV_PARAM_PARSE
    return parser.emitError(loc) << "unknown compression parameter '" << name
                                 << "'";
  };
  if (failed(parser.parseOptionalGreater()) &&
      (parser.parseCommaSeparatedList(parseEntry) || parser.parseGreater()))
    return {};
  return CompressParamsAttr::get(parser.getContext(), method, values);
}

void CompressParamsAttr::print(AsmPrinter &printer) const {
  const CompressParams defaults, &values = getValues();
  llvm::ListSeparator sep;
  printer << '<';
  if (getMethod() != CompressionMethod::Balance)
    printer.getStream() << sep << "method = " << stringifyCompressionMethod(getMethod());
#define BALANCEKV_PARAM_PRINT(type, member, ident, dflt, doc)                  \
  if (values.member != defaults.member) {                                      \
    printer.getStream() << sep << #ident << " = ";                                         \
    printValue(printer, values.member);                                        \
  }
  BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_PRINT)
#undef BALANCEKV_PARAM_PRINT
  printer << '>';
}

//===----------------------------------------------------------------------===//
// custom<CompressParams>: the attribute after the operands, prefix stripped
//===----------------------------------------------------------------------===//

ParseResult balancekv::parseCompressParams(OpAsmParser &parser,
                                           CompressParamsAttr &params) {
  if (failed(parser.parseOptionalLess()))
    return success(); // absent: all defaults
  params = CompressParamsAttr::parseAfterLess(parser);
  return success(bool(params));
}

void balancekv::printCompressParams(OpAsmPrinter &printer, Operation *,
                                    CompressParamsAttr params) {
  if (params)
    params.print(printer);
}
