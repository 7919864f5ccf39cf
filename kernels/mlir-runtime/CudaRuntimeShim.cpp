//===- CudaRuntimeShim.cpp - the mgpu* entry points of MLIR host code -----===//
//
// Host code lowered by upstream gpu-to-llvm (our --balancekv-gpu-pipeline)
// calls `mgpu*` functions; upstream implements them in
// libmlir_cuda_runtime.so, which Debian does not ship. This is our own
// implementation over the CUDA driver API, with two differences that a
// compiler embedding our kernels wants:
//   - device allocations are stream-ordered (cuMemAllocAsync/cuMemFreeAsync
//     from the device's default memory pool), so the per-call scratch of the
//     generated code costs no device synchronisation;
//   - a caller may hand its own stream (e.g. PyTorch's current stream) to
//     every `mgpuStreamCreate` with `balancekv_mgpu_set_stream`, and may
//     defer `mgpuStreamSynchronize` to its own synchronisation with
//     `balancekv_mgpu_set_deferred_sync` (timing loops, graph-free batching).
// Errors print the failing call and CUDA's message to stderr, as upstream.
//
//===----------------------------------------------------------------------===//

#include <cuda.h>

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <unordered_set>

#define BALANCEKV_MGPU_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

void report(CUresult r, const char *what) {
  const char *name = "", *msg = "";
  cuGetErrorName(r, &name);
  cuGetErrorString(r, &msg);
  std::fprintf(stderr, "balancekv mgpu: '%s' failed with %s: %s\n", what, name,
               msg);
}

#define CHECK(call)                                                            \
  do {                                                                         \
    CUresult r_ = (call);                                                      \
    if (r_ != CUDA_SUCCESS)                                                    \
      report(r_, #call);                                                       \
  } while (0)

/// The primary context of device 0 (or the one set by mgpuSetDefaultDevice),
/// made current on the calling thread: the context the CUDA runtime and
/// PyTorch use, so pointers and streams are shared with them.
int defaultDevice = 0;

void ensureContext() {
  thread_local CUcontext current = nullptr;
  if (current)
    return;
  static std::once_flag init;
  std::call_once(init, [] { CHECK(cuInit(0)); });
  CUdevice dev;
  CHECK(cuDeviceGet(&dev, defaultDevice));
  CHECK(cuDevicePrimaryCtxRetain(&current, dev));
  CHECK(cuCtxSetCurrent(current));
}

CUstream callerStream = nullptr;
bool haveCallerStream = false, deferSync = false;

std::mutex managedMutex;
std::unordered_set<void *> managed;

} // namespace

//===----------------------------------------------------------------------===//
// balancekv extensions
//===----------------------------------------------------------------------===//

/// Every later mgpuStreamCreate returns `stream` (null: the legacy default
/// stream) and mgpuStreamDestroy leaves it alone, until reset.
BALANCEKV_MGPU_EXPORT void balancekv_mgpu_set_stream(void *stream) {
  callerStream = static_cast<CUstream>(stream);
  haveCallerStream = true;
}
BALANCEKV_MGPU_EXPORT void balancekv_mgpu_reset_stream() {
  haveCallerStream = false;
}
/// While on, mgpuStreamSynchronize returns at once: the caller synchronises
/// before it reads any result.
BALANCEKV_MGPU_EXPORT void balancekv_mgpu_set_deferred_sync(int on) {
  deferSync = on != 0;
}

//===----------------------------------------------------------------------===//
// Upstream's entry points (mlir/lib/ExecutionEngine/CudaRuntimeWrappers.cpp
// signatures)
//===----------------------------------------------------------------------===//

BALANCEKV_MGPU_EXPORT void mgpuSetDefaultDevice(int32_t device) {
  defaultDevice = device;
}

BALANCEKV_MGPU_EXPORT CUmodule mgpuModuleLoad(void *data, size_t /*size*/) {
  ensureContext();
  CUmodule module = nullptr;
  CHECK(cuModuleLoadData(&module, data));
  return module;
}

BALANCEKV_MGPU_EXPORT CUmodule mgpuModuleLoadJIT(void *data, int optLevel,
                                                 size_t /*size*/) {
  ensureContext();
  CUmodule module = nullptr;
  CUjit_option opts[] = {CU_JIT_OPTIMIZATION_LEVEL};
  void *values[] = {reinterpret_cast<void *>(intptr_t(optLevel))};
  CHECK(cuModuleLoadDataEx(&module, data, 1, opts, values));
  return module;
}

BALANCEKV_MGPU_EXPORT void mgpuModuleUnload(CUmodule module) {
  // Runs from a global destructor; at process exit the driver may already be
  // gone, and the module with it.
  CUresult r = cuModuleUnload(module);
  if (r != CUDA_SUCCESS && r != CUDA_ERROR_DEINITIALIZED)
    report(r, "cuModuleUnload(module)");
}

BALANCEKV_MGPU_EXPORT CUfunction mgpuModuleGetFunction(CUmodule module,
                                                       const char *name) {
  CUfunction fn = nullptr;
  CHECK(cuModuleGetFunction(&fn, module, name));
  return fn;
}

BALANCEKV_MGPU_EXPORT void
mgpuLaunchKernel(CUfunction fn, intptr_t gridX, intptr_t gridY, intptr_t gridZ,
                 intptr_t blockX, intptr_t blockY, intptr_t blockZ,
                 int32_t smem, CUstream stream, void **params, void **extra,
                 size_t /*paramsCount*/) {
  ensureContext();
  // More than 48 KB of dynamic workgroup memory needs an opt-in per kernel.
  if (smem > 48 * 1024)
    CHECK(cuFuncSetAttribute(
        fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem));
  CHECK(cuLaunchKernel(fn, gridX, gridY, gridZ, blockX, blockY, blockZ, smem,
                       stream, params, extra));
}

BALANCEKV_MGPU_EXPORT CUstream mgpuStreamCreate() {
  ensureContext();
  if (haveCallerStream)
    return callerStream;
  CUstream stream = nullptr;
  CHECK(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  return stream;
}

BALANCEKV_MGPU_EXPORT void mgpuStreamDestroy(CUstream stream) {
  if (haveCallerStream && stream == callerStream)
    return;
  CHECK(cuStreamDestroy(stream));
}

BALANCEKV_MGPU_EXPORT void mgpuStreamSynchronize(CUstream stream) {
  if (!deferSync)
    CHECK(cuStreamSynchronize(stream));
}

BALANCEKV_MGPU_EXPORT void mgpuStreamWaitEvent(CUstream stream, CUevent event) {
  CHECK(cuStreamWaitEvent(stream, event, 0));
}

BALANCEKV_MGPU_EXPORT CUevent mgpuEventCreate() {
  ensureContext();
  CUevent event = nullptr;
  CHECK(cuEventCreate(&event, CU_EVENT_DISABLE_TIMING));
  return event;
}

BALANCEKV_MGPU_EXPORT void mgpuEventDestroy(CUevent event) {
  CHECK(cuEventDestroy(event));
}

BALANCEKV_MGPU_EXPORT void mgpuEventSynchronize(CUevent event) {
  CHECK(cuEventSynchronize(event));
}

BALANCEKV_MGPU_EXPORT void mgpuEventRecord(CUevent event, CUstream stream) {
  CHECK(cuEventRecord(event, stream));
}

BALANCEKV_MGPU_EXPORT void *mgpuMemAlloc(uint64_t bytes, CUstream stream,
                                         bool hostShared) {
  ensureContext();
  if (bytes == 0)
    return nullptr;
  CUdeviceptr ptr = 0;
  if (hostShared) {
    CHECK(cuMemAllocManaged(&ptr, bytes, CU_MEM_ATTACH_GLOBAL));
    std::lock_guard<std::mutex> lock(managedMutex);
    managed.insert(reinterpret_cast<void *>(ptr));
  } else {
    CHECK(cuMemAllocAsync(&ptr, bytes, stream));
  }
  return reinterpret_cast<void *>(ptr);
}

BALANCEKV_MGPU_EXPORT void mgpuMemFree(void *ptr, CUstream stream) {
  if (!ptr)
    return;
  {
    std::lock_guard<std::mutex> lock(managedMutex);
    if (managed.erase(ptr)) {
      CHECK(cuStreamSynchronize(stream));
      CHECK(cuMemFree(reinterpret_cast<CUdeviceptr>(ptr)));
      return;
    }
  }
  CHECK(cuMemFreeAsync(reinterpret_cast<CUdeviceptr>(ptr), stream));
}

BALANCEKV_MGPU_EXPORT void mgpuMemcpy(void *dst, void *src, size_t bytes,
                                      CUstream stream) {
  CHECK(cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(dst),
                      reinterpret_cast<CUdeviceptr>(src), bytes, stream));
}

BALANCEKV_MGPU_EXPORT void mgpuMemset32(void *dst, unsigned int value,
                                        size_t count, CUstream stream) {
  CHECK(cuMemsetD32Async(reinterpret_cast<CUdeviceptr>(dst), value, count,
                         stream));
}

BALANCEKV_MGPU_EXPORT void mgpuMemset16(void *dst, unsigned short value,
                                        size_t count, CUstream stream) {
  CHECK(cuMemsetD16Async(reinterpret_cast<CUdeviceptr>(dst), value, count,
                         stream));
}
