package api_test

import (
	"errors"
	"fmt"

	"github.com/gpufabric/gpufabric/engine/api"
)

// Encoding a call and decoding its reply, as the client and the server do
// on either side of a transport.
func Example() {
	body := api.AppendRequest(nil, 42, 0, &api.MemAlloc{Ordinal: 0, Size: 1 << 20})

	h, fields, _ := api.ReadHeader(body)
	req, _ := api.DecodeRequest(h, fields)
	fmt.Printf("%v #%d: %+v\n", h.Op, h.Seq, *req.(*api.MemAlloc))

	reply := api.AppendReply(nil, h.Op, h.Seq, 0, api.Errorf(api.ErrOutOfMemory, "share of 4 MiB is full"), nil)
	_, fields, _ = api.ReadHeader(reply)
	callErr, _ := api.DecodeReply(fields, new(api.MemAllocReply))
	fmt.Println(callErr, errors.Is(callErr, api.ErrOutOfMemory))
	// Output:
	// MemAlloc #42: {Ordinal:0 Size:1048576}
	// CUDA_ERROR_OUT_OF_MEMORY: share of 4 MiB is full true
}
