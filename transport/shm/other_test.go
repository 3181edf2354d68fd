//go:build !linux

package shm

import (
	"context"
	"errors"
	"testing"

	"github.com/gpufabric/gpufabric/transport"
)

func TestNotSupported(t *testing.T) {
	if _, err := Listen("@x", Options{}); !errors.Is(err, transport.ErrNotSupported) {
		t.Fatalf("Listen: %v, want ErrNotSupported", err)
	}
	if _, err := Dial(context.Background(), "@x", Options{}); !errors.Is(err, transport.ErrNotSupported) {
		t.Fatalf("Dial: %v, want ErrNotSupported", err)
	}
}
