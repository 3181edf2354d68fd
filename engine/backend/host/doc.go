// Package host is a CPU emulation of a GPU, labelled as such everywhere it
// shows (Info.Emulated, the device name, smi). It is for development and CI
// on machines without a GPU, and it does the real work it claims:
//
//   - device memory is a real arena of host memory (reserved up front,
//     backed lazily by the kernel), with device addresses that support
//     pointer arithmetic and a size that allocations cannot exceed; freed
//     memory is scrubbed (whole pages dropped, so they come back zero-
//     filled, the ends cleared), so an allocation never shows an earlier
//     owner's bytes;
//   - copies and memsets move real bytes;
//   - each stream is a worker that runs its work in order, concurrently with
//     other streams; events record real times; a cancelled stream drops
//     what it has not started and its running kernel stops at the next
//     chunk of blocks (backend.Canceler);
//   - modules are PTX text: entries and their .param lists are read from the
//     image, in one linear pass with every size, offset and alignment
//     bounded (ptx.go), on any goroutine (backend.ModulePreparer), and each
//     entry is bound by name to a built-in kernel (see kernels.go) that
//     runs with CUDA's grid semantics.
//
// It does not run arbitrary PTX, cubins or fatbins: those load as
// CUDA_ERROR_NOT_SUPPORTED, with the reason.
package host
