package shm

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gpufabric/gpufabric/numa"
	"github.com/gpufabric/gpufabric/transport"
)

// TestPlaceOnNode: the server moves a live connection's region to node 0,
// the region's policy says so, and frames still arrive intact.
func TestPlaceOnNode(t *testing.T) {
	c, s := pair(t, Options{})
	if err := s.PlaceOnNode(0); err != nil {
		t.Fatal(err)
	}
	checkOnNode0(t, s.reg.mem)

	payload := pattern(4<<20, 11)
	errc := make(chan error, 1)
	go func() { errc <- c.Send([]byte("placed"), payload) }()
	body, got, err := recvFrame(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if string(body) != "placed" || !bytes.Equal(got, payload) {
		t.Fatalf("frame after PlaceOnNode: body %q, %d-byte payload intact: %v", body, len(got), bytes.Equal(got, payload))
	}
}

func TestPlaceOnNodeAfterClose(t *testing.T) {
	_, s := pair(t, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.PlaceOnNode(0); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("PlaceOnNode after Close = %v, want ErrClosed", err)
	}
}

// checkOnNode0 checks that mem's policy prefers node 0, where the kernel
// reports policies.
func checkOnNode0(t *testing.T, mem []byte) {
	t.Helper()
	mode, nodes, err := numa.PolicyOf(mem)
	switch {
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
		t.Logf("the kernel does not report memory policies (%v); not checking it", err)
	case err != nil:
		t.Fatal(err)
	case mode != unix.MPOL_PREFERRED || fmt.Sprint(nodes) != "[0]":
		t.Errorf("policy = %d %v, want MPOL_PREFERRED (%d) [0]", mode, nodes, unix.MPOL_PREFERRED)
	}
}
