//===- KernelBuilder.h - terse gpu.func building ----------------*- C++ -*-===//
//
// Helpers shared by the compress and decode kernel generators: a cache of
// kernels in one gpu.module (same key => same kernel), index arithmetic,
// strided loops, scf.if, workgroup buffers and warp/block reductions.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_LIB_CONVERSION_BALANCEKVTOGPU_KERNELBUILDER_H
#define BALANCEKV_LIB_CONVERSION_BALANCEKVTOGPU_KERNELBUILDER_H

#include "balancekv/Support/LoopBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

#include <array>
#include <functional>
#include <map>
#include <memory>

namespace balancekv::gpukernels {

using loops::cF;
using loops::cIdx;
using loops::forStep;
using mlir::ImplicitLocOpBuilder;
using mlir::Type;
using mlir::Value;

/// The gpu.module that holds every generated kernel, and a cache so that ops
/// with the same static configuration share one kernel.
class KernelModule {
public:
  explicit KernelModule(mlir::ModuleOp module);

  /// The kernel for `key`; `build` fills a fresh one (body builder at the
  /// start of the entry block, gpu.return already there).
  mlir::gpu::GPUFuncOp getOrCreate(
      llvm::StringRef name, const std::string &key, llvm::ArrayRef<Type> args,
      int64_t threads, llvm::ArrayRef<Type> workgroupBuffers,
      const std::function<void(ImplicitLocOpBuilder &, mlir::gpu::GPUFuncOp)>
          &build);

private:
  mlir::ModuleOp module;
  mlir::gpu::GPUModuleOp gpuModule;
  std::map<std::string, mlir::gpu::GPUFuncOp> cache;
};

/// One KernelModule per builtin.module that holds ops being lowered: a
/// gpu.launch_func resolves its kernel in the closest module, which must be
/// a gpu.container_module.
class KernelModules {
public:
  KernelModule &forOp(mlir::Operation *op) {
    auto module = op->getParentOfType<mlir::ModuleOp>();
    auto &slot = modules[module.getOperation()];
    if (!slot)
      slot = std::make_unique<KernelModule>(module);
    return *slot;
  }

private:
  std::map<mlir::Operation *, std::unique_ptr<KernelModule>> modules;
};

//===----------------------------------------------------------------------===//
// Index and integer arithmetic
//===----------------------------------------------------------------------===//

inline Value add(ImplicitLocOpBuilder &b, Value x, Value y) {
  return mlir::arith::AddIOp::create(b, x, y);
}
inline Value sub(ImplicitLocOpBuilder &b, Value x, Value y) {
  return mlir::arith::SubIOp::create(b, x, y);
}
inline Value mul(ImplicitLocOpBuilder &b, Value x, Value y) {
  return mlir::arith::MulIOp::create(b, x, y);
}
inline Value divU(ImplicitLocOpBuilder &b, Value x, Value y) {
  return mlir::arith::DivUIOp::create(b, x, y);
}
inline Value remU(ImplicitLocOpBuilder &b, Value x, Value y) {
  return mlir::arith::RemUIOp::create(b, x, y);
}
inline Value minU(ImplicitLocOpBuilder &b, Value x, Value y) {
  return mlir::arith::MinUIOp::create(b, x, y);
}
inline Value cmp(ImplicitLocOpBuilder &b, mlir::arith::CmpIPredicate p, Value x,
                 Value y) {
  return mlir::arith::CmpIOp::create(b, p, x, y);
}
inline Value select(ImplicitLocOpBuilder &b, Value c, Value x, Value y) {
  return mlir::arith::SelectOp::create(b, c, x, y);
}
inline Value cI32(ImplicitLocOpBuilder &b, int64_t v) {
  return mlir::arith::ConstantIntOp::create(b, b.getI32Type(), v);
}
inline Value indexCast(ImplicitLocOpBuilder &b, Type t, Value v) {
  return mlir::arith::IndexCastOp::create(b, t, v);
}

inline Value threadId(ImplicitLocOpBuilder &b) {
  return mlir::gpu::ThreadIdOp::create(b, mlir::gpu::Dimension::x);
}
inline Value blockId(ImplicitLocOpBuilder &b, mlir::gpu::Dimension d) {
  return mlir::gpu::BlockIdOp::create(b, d);
}
inline void barrier(ImplicitLocOpBuilder &b) {
  mlir::gpu::BarrierOp::create(b);
}

//===----------------------------------------------------------------------===//
// Control flow
//===----------------------------------------------------------------------===//

/// for (iv = lb; iv < ub; iv += step) without results.
inline void
forEach(ImplicitLocOpBuilder &b, Value lb, Value ub, int64_t step,
        const std::function<void(ImplicitLocOpBuilder &, Value)> &fn) {
  forStep(b, lb, ub, step, {},
          [&](ImplicitLocOpBuilder &ib, Value iv, mlir::ValueRange) {
            fn(ib, iv);
            return llvm::SmallVector<Value>{};
          });
}

inline void ifThen(ImplicitLocOpBuilder &b, Value cond,
                   const std::function<void(ImplicitLocOpBuilder &)> &fn) {
  mlir::scf::IfOp::create(b, cond,
                          [&](mlir::OpBuilder &nb, mlir::Location loc) {
                            ImplicitLocOpBuilder ib(loc, nb);
                            fn(ib);
                            mlir::scf::YieldOp::create(ib);
                          });
}

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

inline mlir::Attribute workgroupSpace(mlir::MLIRContext *ctx) {
  return mlir::gpu::AddressSpaceAttr::get(ctx,
                                          mlir::gpu::AddressSpace::Workgroup);
}

/// memref<n x t, workgroup> for a workgroup attribution.
inline mlir::MemRefType workgroupBuffer(mlir::MLIRContext *ctx, int64_t n,
                                        Type t) {
  return mlir::MemRefType::get({n}, t, mlir::MemRefLayoutAttrInterface(),
                               workgroupSpace(ctx));
}

/// The kernel's dynamic workgroup memory as i8, and 1-D views of `count`
/// elements of `t` at a byte offset into it (views may alias).
Value dynamicSharedBase(ImplicitLocOpBuilder &b);
Value sharedView(ImplicitLocOpBuilder &b, Value base, int64_t byteOffset,
                 int64_t count, Type t);

inline Value load(ImplicitLocOpBuilder &b, Value mem, mlir::ValueRange idx) {
  return mlir::memref::LoadOp::create(b, mem, idx);
}
inline void store(ImplicitLocOpBuilder &b, Value v, Value mem,
                  mlir::ValueRange idx) {
  mlir::memref::StoreOp::create(b, v, mem, idx);
}

/// A stored element widened to f32.
inline Value loadF32(ImplicitLocOpBuilder &b, Value mem, mlir::ValueRange idx) {
  return loops::widen(b, load(b, mem, idx), b.getF32Type());
}

/// A 16-byte vector load (`vec` elements) widened to f32 lanes.
Value loadVectorF32(ImplicitLocOpBuilder &b, Value mem, mlir::ValueRange idx,
                    int64_t vec);

//===----------------------------------------------------------------------===//
// Host side
//===----------------------------------------------------------------------===//

/// A device buffer (synchronous gpu.alloc; gpu-async-region chains it).
inline Value deviceAlloc(ImplicitLocOpBuilder &b, mlir::MemRefType type) {
  return mlir::gpu::AllocOp::create(b, type, Type(), mlir::ValueRange{},
                                    mlir::ValueRange{}, mlir::ValueRange{},
                                    false)
      .getMemref();
}
inline void deviceFree(ImplicitLocOpBuilder &b, Value buffer) {
  mlir::gpu::DeallocOp::create(b, Type(), mlir::ValueRange{}, buffer);
}

/// gpu.launch_func of `kernel` on a grid of `grid` workgroups of `threads`
/// threads (x only), with `sharedBytes` of dynamic workgroup memory (0: none).
inline void launch(ImplicitLocOpBuilder &b, mlir::gpu::GPUFuncOp kernel,
                   std::array<int64_t, 3> grid, int64_t threads,
                   int64_t sharedBytes, mlir::ValueRange args) {
  mlir::gpu::LaunchFuncOp::create(
      b, kernel,
      mlir::gpu::KernelDim3{cIdx(b, grid[0]), cIdx(b, grid[1]),
                            cIdx(b, grid[2])},
      mlir::gpu::KernelDim3{cIdx(b, threads), cIdx(b, 1), cIdx(b, 1)},
      sharedBytes ? Value(cI32(b, sharedBytes)) : Value(), args);
}

/// 1 (i32) when every buffer's aligned pointer is a multiple of 16 bytes,
/// else 0: the `vectorized` argument of kernels that have a 16-byte path.
/// A kernel argument rather than a host-side branch keeps the launches in
/// one gpu-async-region chain.
Value aligned16Flag(ImplicitLocOpBuilder &b, mlir::ValueRange buffers);

/// scf.if (flag != 0) then/else without results; uniform `flag` only when
/// the branches contain barriers.
void ifFlag(ImplicitLocOpBuilder &b, Value flag,
            const std::function<void(ImplicitLocOpBuilder &)> &thenFn,
            const std::function<void(ImplicitLocOpBuilder &)> &elseFn);

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//

enum class Combine { Add, Max };

Value combine(ImplicitLocOpBuilder &b, Combine kind, Value x, Value y);

/// Butterfly all-reduce over the 32 lanes of a warp (gpu.shuffle xor).
Value warpAllReduce(ImplicitLocOpBuilder &b, Combine kind, Value v);

/// All-reduce over the workgroup through `scratch` (one f32 per warp); every
/// thread gets the result. Contains barriers: call from uniform control flow.
Value blockAllReduce(ImplicitLocOpBuilder &b, Combine kind, Value v,
                     Value scratch, int64_t threads);

/// Exclusive prefix sum of one i32 per thread through `scratch`
/// (`threads` i32); returns {exclusive prefix, total}. Contains barriers.
std::pair<Value, Value> blockExclusiveScan(ImplicitLocOpBuilder &b, Value v,
                                           Value scratch, int64_t threads);

} // namespace balancekv::gpukernels

#endif // BALANCEKV_LIB_CONVERSION_BALANCEKVTOGPU_KERNELBUILDER_H
