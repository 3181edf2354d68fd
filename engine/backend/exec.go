package backend

import "github.com/gpufabric/gpufabric/engine/api"

// Optional capabilities of streams for the execution calls beyond kernels
// and copies. The engine asks a stream for them with a type assertion and
// answers CUDA_ERROR_NOT_SUPPORTED where a backend has none.

// Holder is implemented by streams that can hold their later work until
// the engine lets it go: a host function runs in the client, and the
// stream's work after it must wait for it to return, as CUDA orders it.
type Holder interface {
	// Hold makes work queued after it wait until release is closed. A
	// cancelled stream (Canceler) stops holding.
	Hold(release <-chan struct{}) error
}

// ValueStream is implemented by streams that serve the stream memory
// operations, cuStreamWaitValue and cuStreamWriteValue. size is 4 or 8
// bytes; ptr is aligned to it; flags are CUDA's (api.Wait*).
type ValueStream interface {
	// WaitValue makes later work wait until the word at ptr compares with
	// value as flags say. A cancelled stream stops waiting.
	WaitValue(ptr DevicePtr, value uint64, size int, flags uint32) error
	// WriteValue writes value at ptr when the stream reaches it, so that a
	// WaitValue on another stream of the device sees it.
	WriteValue(ptr DevicePtr, value uint64, size int) error
}

// LinkInput is one input of a JIT link: its CUjitInputType (api.Link*),
// its name for messages, and its bytes.
type LinkInput struct {
	Type uint8
	Name string
	Data []byte
}

// Linker is implemented by devices that link JIT inputs into one module
// image, as cuLinkComplete does. Link is safe from any goroutine and
// touches no device state: the engine calls it off the shard, as it
// prepares modules. The returned image is the caller's.
type Linker interface {
	Link(inputs []LinkInput) ([]byte, error)
}

// CheckValueOp checks the operands of a stream memory operation as the
// driver does: a 4- or 8-byte word, aligned to its size, and for a wait
// (wait true) a known comparison.
func CheckValueOp(ptr DevicePtr, size int, flags uint32, wait bool) error {
	if size != 4 && size != 8 {
		return api.Errorf(api.ErrInvalidValue, "a stream memory operation on %d bytes; 4 or 8", size)
	}
	if ptr%uint64(size) != 0 {
		return api.Errorf(api.ErrInvalidValue, "a %d-byte stream memory operation at unaligned %#x", size, ptr)
	}
	if wait && flags&^api.WaitFlush > api.WaitNOR {
		return api.Errorf(api.ErrInvalidValue, "stream wait flags %#x", flags)
	}
	return nil
}

// FunctionAttributer is implemented by functions whose device can say
// what resources they use: their CUfunction_attribute values (the first
// api.FuncAttrCount at most, -1 for any the device cannot give), from
// which a client computes occupancy. Called from the shard.
type FunctionAttributer interface {
	Attributes() ([]int32, error)
}
