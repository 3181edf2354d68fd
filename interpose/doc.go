// Package interpose is the client side of gpufabric: the Go library that
// launchers, benchmarks and the CUDA interposer link to reach a GPU server.
//
// Dial opens a session; Attach adds a device with a share of its memory;
// the Device, Stream, Event, Module and Function types mirror the CUDA
// driver API's objects and calls.
//
// Calls follow the fabric's rule that round trips are the enemy: creating a
// stream, event or function handle, launching, freeing, recording and
// asynchronous copies are sent without waiting (the connection batches
// them), and their errors come back from the next synchronising call
// (Stream.Synchronize, Event.Synchronize, Device.Synchronize, or a query).
// Large copies are split into chunks that are all in flight at once, so the
// network and the device overlap.
//
// Errors are api.Result values (CUDA result codes), often wrapped in an
// *api.Error with the server's explanation; errors.Is matches both. Once
// the connection is gone every call fails with CUDA_ERROR_DEINITIALIZED.
package interpose
