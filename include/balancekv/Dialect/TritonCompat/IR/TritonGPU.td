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

def TTG_AsyncToken : TypeDef<TTG_Dialect, "AsyncToken"> {
  let mnemonic = "async.token";
  let summary = "orders asynchronous copies, their commit groups and waits";
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
def TTG_LocalLoadOp : TTG_Op<"local_load", [MemoryEffects<[MemRead]>]> {
  let summary = "a tensor loaded from a shared-memory buffer";
  let arguments = (ins TTG_MemDescType:$src, Optional<TTG_AsyncToken>:$token);
  let results = (outs TT_Tensor:$result);
  let assemblyFormat = [{
    $src (`token` $token^)? attr-dict `:` qualified(type($src)) `->` type($result)
  }];
}

def TTG_AsyncCopyGlobalToLocalOp : TTG_Op<"async_copy_global_to_local", [
    AttrSizedOperandSegments, MemoryEffects<[MemRead, MemWrite]>,
    TypesMatchWith<"mask type matches src type", "src", "mask",
                   "::balancekv::tt::getI1SameShape($_self)",
                   "($_op.getOperands().size() <= 2) || std::equal_to<>()">,
    TypesMatchWith<"other type matches src type", "src", "other",
                   "::balancekv::tt::getPointeeType($_self)",
                   "($_op.getOperands().size() <= 3) || std::equal_to<>()">]> {
  let summary = "cp.async: a tile through a tensor of pointers into shared memory";
  let arguments = (ins TT_PtrTensor:$src, TTG_MemDescType:$result,
    Optional<TT_BoolLike>:$mask, Optional<TT_Type>:$other,
    DefaultValuedAttr<TT_CacheModifierAttr, "::balancekv::tt::CacheModifier::NONE">:$cache,
    DefaultValuedAttr<TT_EvictionPolicyAttr, "::balancekv::tt::EvictionPolicy::NORMAL">:$evict,
    DefaultValuedAttr<BoolAttr, "false">:$isVolatile,
    DefaultValuedAttr<I32Attr, "1">:$contiguity);
  let results = (outs TTG_AsyncToken:$token);
  let assemblyFormat = [{
    $src `,` $result (`mask` $mask^)? (`other` $other^)?
    oilist(`cacheModifier` `=` $cache | `evictionPolicy` `=` $evict)
    attr-dict `:` type($src) `->` type($result)
  }];
}

def TTG_AsyncCommitGroupOp : TTG_Op<"async_commit_group"> {
  let summary = "close the pending async copies into a group one can wait on";
  let arguments = (ins Variadic<TTG_AsyncToken>:$inputTokens);
  let results = (outs TTG_AsyncToken:$asyncToken);
  let assemblyFormat = "(`tokens` $inputTokens^)? attr-dict";
}

def TTG_AsyncWaitOp : TTG_Op<"async_wait"> {
  let summary = "wait until at most `num` async copy groups are in flight";
  let arguments = (ins Variadic<TTG_AsyncToken>:$asyncToken, I32Attr:$num);
  let results = (outs TTG_AsyncToken:$retToken);
  let assemblyFormat = "($asyncToken^)? attr-dict";
}

def TTG_LocalDeallocOp : TTG_Op<"local_dealloc", [MemoryEffects<[MemFree]>]> {
  let summary = "the end of a shared-memory buffer's life";
  let arguments = (ins TTG_MemDescType:$src);
  let assemblyFormat = "$src attr-dict `:` qualified(type($src))";
}

def TTG_MemDescIndexOp : TTG_Op<"memdesc_index", [Pure]> {
  let summary = "the i-th buffer along dim 0 of a memory descriptor (a view)";
  let arguments = (ins TTG_MemDescType:$src, I32:$index);
  let results = (outs TTG_MemDescType:$result);
  let assemblyFormat = [{
    $src `[` $index `]` attr-dict `:` qualified(type($src)) `->`
    qualified(type($result))
  }];
}

def TTG_MemDescTransOp : TTG_Op<"memdesc_trans", [Pure]> {
  let summary = "a memory descriptor with its dims permuted (a view)";
  let arguments = (ins TTG_MemDescType:$src, DenseI32ArrayAttr:$order);
  let results = (outs TTG_MemDescType:$result);
  let assemblyFormat = [{
    $src attr-dict `:` qualified(type($src)) `->` qualified(type($result))
  }];
}

def TTG_GlobalScratchAllocOp : TTG_Op<"global_scratch_alloc",
                                      [MemoryEffects<[MemAlloc]>]> {
  let summary = "per-program global scratch memory (e.g. a TMA descriptor)";
  let arguments = (ins I32Attr:$nbytes, I32Attr:$alignment);
  let results = (outs TT_Ptr:$result);
  let assemblyFormat = "attr-dict `:` qualified(type($result))";
}


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

def TTNG_InitBarrierOp : TTNG_Op<"init_barrier", [MemoryEffects<[MemWrite]>]> {
  let summary = "initialise an mbarrier expecting `count` arrivals";
  let arguments = (ins TTG_MemDescType:$alloc, I32Attr:$count);
  let assemblyFormat = "$alloc `,` $count attr-dict `:` qualified(type($alloc))";
}

def TTNG_InvalBarrierOp : TTNG_Op<"inval_barrier", [MemoryEffects<[MemWrite]>]> {
  let summary = "invalidate an mbarrier so its memory can be reused";
  let arguments = (ins TTG_MemDescType:$alloc);
  let assemblyFormat = "$alloc attr-dict `:` qualified(type($alloc))";
}

def TTNG_BarrierExpectOp : TTNG_Op<"barrier_expect", [MemoryEffects<[MemWrite]>]> {
  let summary = "tell an mbarrier `size` bytes are to arrive (if `pred`)";
  let arguments = (ins TTG_MemDescType:$alloc, I32Attr:$size, I1:$pred);
  let assemblyFormat = [{
    $alloc `,` $size attr-dict `,` $pred `:` qualified(type($alloc))
  }];
}

def TTNG_WaitBarrierOp : TTNG_Op<"wait_barrier", [AttrSizedOperandSegments,
    MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "wait until an mbarrier completes phase `phase`";
  let arguments = (ins TTG_MemDescType:$alloc, I32:$phase, Optional<I1>:$pred,
                       Variadic<TTG_MemDescType>:$deps);
  let assemblyFormat = [{
    $alloc `,` $phase (`,` $pred^)? (`deps` $deps^)?
    attr-dict `:` qualified(type($alloc)) (`,` type($deps)^)?
  }];
}

def TTNG_AsyncTMACopyGlobalToLocalOp : TTNG_Op<"async_tma_copy_global_to_local",
    [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "TMA: a block of global memory (by descriptor) to shared memory";
  let arguments = (ins TT_TensorDescType:$desc, Variadic<I32>:$coord,
    TTG_MemDescType:$barrier, TTG_MemDescType:$result, I1:$pred,
    DefaultValuedAttr<TT_CacheModifierAttr, "::balancekv::tt::CacheModifier::NONE">:$cache,
    DefaultValuedAttr<TT_EvictionPolicyAttr, "::balancekv::tt::EvictionPolicy::NORMAL">:$evict,
    DefaultValuedAttr<BoolAttr, "false">:$isVolatile);
  let assemblyFormat = [{
    $desc `[` $coord `]` $result `,` $barrier `,` $pred
    oilist(`cacheModifier` `=` $cache | `evictionPolicy` `=` $evict)
    attr-dict `:` qualified(type($desc)) `,` qualified(type($barrier)) `->`
    qualified(type($result))
  }];
}

def TTNG_AsyncTMACopyLocalToGlobalOp : TTNG_Op<"async_tma_copy_local_to_global",
    [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "TMA: a shared-memory block to global memory (by descriptor)";
  let arguments = (ins TT_TensorDescType:$desc, Variadic<I32>:$coord,
                       TTG_MemDescType:$src);
  let assemblyFormat = [{
    $desc `[` $coord `]` $src attr-dict `:` qualified(type($desc)) `,`
    qualified(type($src))
  }];
}

def TTNG_TMAStoreWaitOp : TTNG_Op<"async_tma_store_wait"> {
  let summary = "wait until at most `pendings` TMA stores are in flight";
  let arguments = (ins I32Attr:$pendings);
  let assemblyFormat = "attr-dict";
}

def TTNG_TensormapCreateOp : TTNG_Op<"tensormap_create", [AttrSizedOperandSegments,
    MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "write a TMA descriptor (tensor map) to global memory";
  let arguments = (ins TT_Ptr:$desc_ptr, TT_Ptr:$global_address,
    Variadic<I32>:$box_dim, Variadic<I32>:$global_dim,
    Variadic<I64>:$global_stride, Variadic<I32>:$element_stride,
    I32Attr:$elem_type, I32Attr:$interleave_layout, I32Attr:$swizzle_mode,
    I32Attr:$fill_mode);
  let assemblyFormat = [{
    $desc_ptr `,` $global_address `,` `[` $box_dim `]` `,` `[` $global_dim `]`
    `,` `[` $global_stride `]` `,` `[` $element_stride `]` attr-dict `:`
    functional-type(operands, results)
  }];
}

def TTNG_TensormapFenceproxyAcquireOp : TTNG_Op<"tensormap_fenceproxy_acquire",
    [MemoryEffects<[MemWrite]>]> {
  let summary = "make a descriptor written by this program visible to TMA";
  let arguments = (ins TT_Ptr:$desc_ptr);
  let assemblyFormat = "$desc_ptr attr-dict `:` qualified(type($desc_ptr))";
}

def TTNG_ReinterpretTensorDescOp : TTNG_Op<"reinterpret_tensor_descriptor", [Pure]> {
  let summary = "a raw descriptor pointer as a tensor descriptor";
  let arguments = (ins TT_Ptr:$rawDesc);
  let results = (outs TT_TensorDescType:$result);
  let assemblyFormat = [{
    $rawDesc attr-dict `:` qualified(type($rawDesc)) `to` qualified(type($result))
  }];
}

#endif // BALANCEKV_TRITONCOMPAT_TRITONGPU_TD
