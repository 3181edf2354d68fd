package backend

// Host memory a client shares with the server (pinned memory over shared
// memory; see engine's calls_pinned.go) lives in the server's address space
// for as long as the client holds it, and its copies move between it and
// the device with nothing in between. A backend whose driver copies faster
// from memory it knows (CUDA's DMA engines read only page-locked memory;
// from any other the driver stages through a buffer of its own) says so
// with these interfaces; the host emulation needs neither, as its copies
// are already one memcpy.

// HostRegistrar is implemented by devices that can register host memory
// with their driver (cuMemHostRegister). Called from the shard.
type HostRegistrar interface {
	// RegisterHost makes b known to the driver until UnregisterHost(b). b
	// is page aligned and whole pages long.
	RegisterHost(b []byte) error
	// UnregisterHost undoes RegisterHost(b). No work that uses b may be
	// queued or running.
	UnregisterHost(b []byte) error
}

// RegisteredCopier is implemented by streams that copy straight between
// device memory and host memory registered with their device's
// HostRegistrar, in the stream's order, as the driver's asynchronous copies
// from page-locked memory do: the host bytes are read (or written) when the
// stream reaches the copy, not when it is queued.
type RegisteredCopier interface {
	// CopyHtoDRegistered copies src, registered, to dst. The caller keeps
	// src mapped and registered until the stream has passed the copy (a
	// Notify after it has called back).
	CopyHtoDRegistered(dst DevicePtr, src []byte) error
	// CopyDtoHRegistered copies len(dst) bytes at src into dst, registered,
	// kept so as src is for CopyHtoDRegistered.
	CopyDtoHRegistered(dst []byte, src DevicePtr) error
}
