// Command libcuda is the gpufabric interposer: built with
// -buildmode=c-shared into libgpufabric.so and installed under the names
// libcuda.so.1 and libnvidia-ml.so.1, it stands in for the CUDA driver and
// NVML of an unmodified application started by `gpufabric run`, and carries
// its calls to a GPU server through the interpose client library.
//
// # What it owns
//
// The driver API's ABI: every cu* name the real libcuda.so.1 exports (the
// list is gen/names.txt), cuGetProcAddress with the versioned table of
// gen/versions.txt, the two undocumented export tables the CUDA runtime
// needs, and the NVML calls frameworks probe. Names it does not implement are
// generated stubs that return CUDA_ERROR_NOT_SUPPORTED and log their name
// once (GPUFABRIC_LOG=quiet silences them). It does not own the protocol,
// the session or the transport: those are the interpose package's.
//
// # Layout
//
// C entry points (gf_*.c) check, before anything enters Go, that the call
// may proceed: not in a child forked after the library loaded (the Go
// runtime's threads did not survive the fork), cuInit done, the session not
// gone. Contexts live in C, a current-context stack per thread in
// thread-local storage; Go receives the current context and its device with
// each call. Go (the *.go files) keeps the session, the objects behind the
// application's handles, and the registry of allocations that unified
// addressing and pointer attributes consult.
//
// Handles handed to the application are small, non-NULL, pointer-sized
// values: an index shifted left by four with the object's kind in the low
// bits, so a CUkernel passed where a CUfunction is expected is recognised,
// and CU_STREAM_LEGACY (0x1) and CU_STREAM_PER_THREAD (0x2) never collide
// with a real stream.
//
// # Fast path
//
// Launches, asynchronous copies and memsets, event records, stream waits and
// frees are sent without waiting for the server (the interpose client
// batches them); their failures come back from the next synchronising call.
// With GPUFABRIC_TRACE set, every call is appended to that file as a JSON
// line; when it is unset the cost is one predictable branch.
//
// The files stubs_gen.c and procaddr_gen.go are generated: edit gen/names.txt
// or gen/versions.txt and run `go generate ./interpose/libcuda`.
package main
