//===- TritonGPU.td - Triton 3.6 ttg and ttng, re-declared --*- tablegen -*-===//
//
// Enough of TritonGPU (`ttg`) and TritonNvidiaGPU (`ttng`) that Triton 3.6's
// TTGIR of attention kernels on Hopper reads and prints back (and Triton
// compiles balancekv-opt's generic form of it): layouts as attributes, the
// shared-memory descriptor type, and the layout, shared-memory and wgmma ops
// those kernels contain.
//
//===----------------------------------------------------------------------===//

#ifndef BALANCEKV_TRITONCOMPAT_TRITONGPU_TD
#define BALANCEKV_TRITONCOMPAT_TRITONGPU_TD

include "balancekv/Dialect/TritonCompat/IR/TritonDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def TTG_Dialect : Dialect {
  let name = "ttg";
  let cppNamespace = "::balancekv::ttg";
  let summary = "Triton 3.6's TritonGPU dialect, as much as attention kernels use";
  let description = [{
    Layouts (`#ttg.blocked`, `#ttg.slice`, `#ttg.nvidia_mma`, `#ttg.dot_op`,
    `#ttg.nvmma_shared`, `#ttg.shared_memory`, ...) are one attribute class
    holding the layout's name and its parameters as Triton writes them
    (`#ttg.blocked<{sizePerThread = [1, 1], ...}>`); Triton reads them back
    by parameter name.
  }];
  let useDefaultTypePrinterParser = 1;
  let useDefaultAttributePrinterParser = 0;
  let dependentDialects = ["::balancekv::tt::TTDialect"];
  let extraClassDeclaration = [{
    ::mlir::Attribute parseAttribute(::mlir::DialectAsmParser &parser,
                                     ::mlir::Type type) const override;
    void printAttribute(::mlir::Attribute attr,
                        ::mlir::DialectAsmPrinter &printer) const override;
  }];
}

def TTG_LayoutAttr : AttrDef<TTG_Dialect, "Layout"> {
  let summary = "a TritonGPU layout: its name and parameters";
  // Named by its parameter: TTGDialect::parseAttribute/printAttribute.
  let attrName = "ttg.layout";
  // The parameters in Triton's order (its parsers read some of them as a
  // struct, in order): names and values side by side.
  let parameters = (ins "::mlir::StringAttr":$name, "::mlir::ArrayAttr":$keys,
                        "::mlir::ArrayAttr":$values);
}

def TTG_MemDescType : TypeDef<TTG_Dialect, "MemDesc"> {
  let mnemonic = "memdesc";
  let summary = "a buffer in (shared) memory with a layout";
  let parameters = (ins ArrayRefParameter<"int64_t">:$shape,
                        "::mlir::Type":$elementType,
                        "::mlir::Attribute":$encoding,
                        "::mlir::Attribute":$memorySpace,
                        "bool":$mutableMemory,
                        ArrayRefParameter<"int64_t">:$allocShape);
  // !ttg.memdesc<64x64xbf16, #shared, #smem[, mutable][, 2x64x64]>
  let hasCustomAssemblyFormat = 1;
}

class TTG_Op<string mnemonic, list<Trait> traits = []>
    : Op<TTG_Dialect, mnemonic, traits>;

def TTG_ConvertLayoutOp : TTG_Op<"convert_layout", [Pure,
                                                      SameOperandsAndResultShape,
                                                      SameOperandsAndResultElementType]> {
  let summary = "the same tensor in another layout";
  let arguments = (ins TT_Tensor:$src);
  let results = (outs TT_Tensor:$result);
  let assemblyFormat = "$src attr-dict `:` type($src) `->` type($result)";
}

def TTG_LocalAllocOp : TTG_Op<"local_alloc", [MemoryEffects<[MemAlloc, MemWrite]>]> {
  let summary = "a shared-memory buffer, initialised from a tensor if given";
  let arguments = (ins Optional<TT_Tensor>:$src, OptionalAttr<I32Attr>:$alignment);
  let results = (outs TTG_MemDescType:$result);
  let assemblyFormat = [{
    ($src^)? attr-dict `:` functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// ttng: the Hopper ops (wgmma and its wait, the async shared-memory fence)
//===----------------------------------------------------------------------===//

def TTNG_Dialect : Dialect {
  let name = "ttng";
  let cppNamespace = "::balancekv::ttng";
  let summary = "Triton 3.6's TritonNvidiaGPU dialect, as much as attention kernels use";
  let dependentDialects = ["::balancekv::ttg::TTGDialect"];
}

class TTNG_Op<string mnemonic, list<Trait> traits = []>
    : Op<TTNG_Dialect, mnemonic, traits>;

def TTNG_TensorOrMemDesc : AnyTypeOf<[TT_Tensor, TTG_MemDescType]>;

def TTNG_WarpGroupDotOp : TTNG_Op<"warp_group_dot", [
    MemoryEffects<[MemRead]>,
    TypesMatchWith<"accumulator type matches result type", "d", "c", "$_self">]> {
  let summary = "d = a * b + c on Hopper's warp-group MMA (wgmma)";
  let arguments = (ins TTNG_TensorOrMemDesc:$a, TTG_MemDescType:$b,
    TT_Tensor:$c, Optional<I1>:$useC,
    DefaultValuedAttr<TT_InputPrecisionAttr, "::balancekv::tt::InputPrecision::IEEE">:$inputPrecision,
    DefaultValuedAttr<I32Attr, "0">:$maxNumImpreciseAcc,
    DefaultValuedAttr<BoolAttr, "false">:$isAsync);
  let results = (outs TT_Tensor:$d);
  let assemblyFormat = [{
    $a `,` $b `,` $c (`,` $useC^)? attr-dict `:` type($a) `*` qualified(type($b))
    `->` type($d)
  }];
}

def TTNG_WarpGroupDotWaitOp : TTNG_Op<"warp_group_dot_wait", [
    AllTypesMatch<["inputs", "outputs"]>]> {
  let summary = "wait until at most `pendings` wgmma groups are in flight";
  let arguments = (ins Variadic<TTNG_TensorOrMemDesc>:$inputs, I32Attr:$pendings);
  let results = (outs Variadic<TTNG_TensorOrMemDesc>:$outputs);
  let assemblyFormat = "$inputs attr-dict `:` type($inputs)";
}

def TTNG_FenceAsyncSharedOp : TTNG_Op<"fence_async_shared"> {
  let summary = "order generic-proxy shared-memory writes before async-proxy reads";
  let arguments = (ins BoolAttr:$bCluster);
  let assemblyFormat = "attr-dict";
}

#endif // BALANCEKV_TRITONCOMPAT_TRITONGPU_TD
