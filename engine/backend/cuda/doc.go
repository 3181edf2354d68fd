// Package cuda is the backend.Device for real NVIDIA GPUs. It drives the
// CUDA driver API through libcuda.so.1, which it opens with dlopen at run
// time, so the one gpufabric binary builds without a CUDA toolkit and starts
// on hosts without a GPU; there Open fails with an error that matches
// ErrUnavailable and says why ("libcuda.so.1 not found: ...", "cuInit:
// CUDA_ERROR_NO_DEVICE").
//
// # What it owns
//
//   - The driver: loading it (once per process), cuInit, enumerating
//     devices, and for each device its primary context, retained at Open and
//     released at Close. Every call makes that context current on the
//     calling thread, so the shard's locked thread, stream workers and
//     waiter goroutines can all call in.
//   - Streams, events, modules, kernels and launches, mapped one to one onto
//     driver objects. Launches pass the packed parameter buffer through
//     cuLaunchKernel's `extra` form; Function.Params comes from
//     cuFuncGetParamInfo (driver 12.4 and later; nil, "layout unknown",
//     before).
//   - Host↔device copies through pinned staging buffers, pipelined in chunks
//     (pipeline.go explains how), and the stream-ordered host work that
//     makes them non-blocking: while a stream has host work pending, later
//     calls on it queue behind that work on the stream's worker goroutine,
//     and otherwise go straight to the driver.
//   - Scrubbing: every allocation is cleared (cuMemsetD8Async on an
//     internal stream, waited for) before Alloc returns it, since sessions
//     share a context and the driver reuses freed memory unscrubbed.
//   - Module preparation (backend.ModulePreparer): PrepareModule checks an
//     image's kind on any goroutine; LoadPrepared calls cuModuleLoadData on
//     the shard, so the driver's JIT of PTX still runs there (see
//     Device.PrepareModule for what would move it).
//   - Cancellation (backend.Canceler): a cancelled stream drops the
//     host-side work queued on it; what the driver already has (a running
//     kernel above all) runs to its end, since CUDA cannot cancel it
//     short of resetting the context every session shares.
//   - Completion without blocking the shard: Stream.Notify records an
//     internal event and a per-stream waiter goroutine sleeps on it
//     (blocking-sync events, so no CPU spins) before calling back.
//   - Monitoring through NVML (go-nvml): telemetry (utilisation, memory,
//     temperature, power, ECC) and health from Xid events, for the devices
//     NVML and CUDA agree on by UUID or PCI bus id; and Inventory, the list
//     of GPUs with their PCI addresses that placement uses.
//
// # What it does not own
//
// Sessions, shares, quotas and handles are the engine's. The engine checks
// every address a client names before it reaches this package, calls each
// device from its shard's thread, frees memory only once no queued work can
// touch it, and destroys streams before closing a device. All sessions on a
// GPU share its primary context, so the engine's checks on copies and
// memsets are the isolation there is: a compiled kernel's accesses cannot be
// checked before it runs (Stream.Launch ignores its Memory argument), and a
// kernel that computes a wild address can reach another session's memory on
// the same GPU, as under any single-context sharing. Clients that must not
// share that exposure need a GPU (or a MIG instance) of their own.
//
// # Layout
//
// The cgo surface is small and fenced: cuda_shim.h and cuda_shim_linux.c
// declare the driver's types and functions (written from NVIDIA's public API
// reference; there is no cuda.h here) and wrap each call; driver_linux.go
// turns them into Go functions over handles and numbers; cmem_linux.go is
// the one file that uses unsafe, for the memory that crosses. The rest is
// plain Go. Files without _linux carry the pure logic (parameter layouts,
// staged-copy pipelines, id spellings, Xid classes) and build everywhere;
// open_other.go is the stub for other systems and for CGO_ENABLED=0.
//
// # Tests
//
// Without a GPU the tests run against testdata/fakecuda.c, a small model of
// libcuda built with the system C compiler (device memory on the host heap,
// a current context required on every thread, pinned memory required for
// async copies, kernels of examples/kernels.ptx run on the CPU), and against
// go-nvml's dgxa100 mock for NVML. The same suite runs on a real GPU in
// TestRealGPU; scripts/gpu-check.sh runs it with GPUFABRIC_REQUIRE_GPU=1,
// which turns "no GPU, skip" into a failure.
package cuda
