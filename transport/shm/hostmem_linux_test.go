//go:build linux

package shm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpufabric/gpufabric/transport"
)

// TestHostRegionShared: a region the client passes is one memory on both
// sides, written by either and read by the other, and frames still flow.
func TestHostRegionShared(t *testing.T) {
	c, s := pair(t, Options{})
	h, err := NewHostRegion(1<<20 + 1)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Size() != 1<<20+pageSize {
		t.Fatalf("size %d, want whole pages", h.Size())
	}
	if err := c.ShareRegion(7, h); err != nil {
		t.Fatal(err)
	}
	mem, unmap, err := s.TakeRegion(7, uint64(h.Size()), 0, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unmap()
	checkOnNode0(t, mem) // placed as the server places a region on its device's node
	cm, err := h.Map()
	if err != nil {
		t.Fatal(err)
	}
	want := pattern(len(cm), 3)
	copy(cm, want)
	if !bytes.Equal(mem, want) {
		t.Fatal("the server does not see the client's writes")
	}
	copy(mem[100:], "from the server")
	if string(cm[100:115]) != "from the server" {
		t.Fatal("the client does not see the server's writes")
	}
	if err := c.Send([]byte("after"), nil); err != nil {
		t.Fatal(err)
	}
	if body, _, err := recvFrame(s); err != nil || string(body) != "after" {
		t.Fatalf("frame after a shared region: %q %v", body, err)
	}
}

// TestTakeRegionRefuses: what the client passes is checked before the
// server maps it; a refusal closes the file and leaves the connection up.
func TestTakeRegionRefuses(t *testing.T) {
	c, s := pair(t, Options{})
	h, err := NewHostRegion(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	unsealed, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(unsealed)
	if err := unix.Ftruncate(unsealed, 64<<10); err != nil {
		t.Fatal(err)
	}
	if err := c.ShareRegion(1, h); err != nil {
		t.Fatal(err)
	}
	sendFile(t, c, 2, unsealed)

	tests := []struct {
		name string
		id   uint32
		size uint64
		want error
	}{
		{"size other than the file's", 1, 128 << 10, nil},
		{"file that may shrink", 2, 64 << 10, nil},
		{"id never passed", 3, 64 << 10, ErrNoRegion},
		{"id already taken", 1, 64 << 10, ErrNoRegion},
	}
	for _, tt := range tests {
		mem, _, err := s.TakeRegion(tt.id, tt.size, -1, 50*time.Millisecond)
		if err == nil || mem != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: mem %d bytes, err %v; want an error matching %v", tt.name, len(mem), err, tt.want)
		}
	}
	// A file the server refuses is dropped, not held.
	if err := c.ShareRegion(4, h); err != nil {
		t.Fatal(err)
	}
	if err := s.DropRegion(4, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.TakeRegion(4, 64<<10, -1, 10*time.Millisecond); !errors.Is(err, ErrNoRegion) {
		t.Errorf("a dropped region could still be taken: %v", err)
	}
	if err := c.Send([]byte("still up"), nil); err != nil {
		t.Fatal(err)
	}
	if body, _, err := recvFrame(s); err != nil || string(body) != "still up" {
		t.Fatalf("frame after refusals: %q %v", body, err)
	}
}

// TestSocketGarbage: a peer that writes on the socket what is not a region
// record loses its connection, and the server's waiters wake.
func TestSocketGarbage(t *testing.T) {
	tests := []struct {
		name string
		send func(t *testing.T, c *Conn)
	}{
		{"bytes without a descriptor", func(t *testing.T, c *Conn) {
			var rec [fileRecord]byte
			binary.LittleEndian.PutUint32(rec[:], fileMagic)
			if _, err := c.sock.Write(rec[:]); err != nil {
				t.Fatal(err)
			}
		}},
		{"wrong magic", func(t *testing.T, c *Conn) {
			fd, err := unix.MemfdCreate("x", unix.MFD_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if _, _, err := c.sock.WriteMsgUnix([]byte("garbage!"), unix.UnixRights(fd), nil); err != nil {
				t.Fatal(err)
			}
		}},
		{"one id twice", func(t *testing.T, c *Conn) {
			h, err := NewHostRegion(4096)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			for range 2 {
				if err := c.ShareRegion(9, h); err != nil && !errors.Is(err, transport.ErrClosed) {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := pair(t, Options{})
			tt.send(t, c)
			if _, _, err := s.Recv(); err == nil {
				t.Fatal("Recv succeeded on a connection whose peer broke the socket's records")
			}
			for deadline := time.Now().Add(5 * time.Second); !s.PeerClosed(); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the connection is not marked gone")
				}
			}
		})
	}
}

// sendFile passes fd as region id without the checks ShareRegion's
// HostRegion guarantees.
func sendFile(t *testing.T, c *Conn, id uint32, fd int) {
	t.Helper()
	var rec [fileRecord]byte
	binary.LittleEndian.PutUint32(rec[0:], fileMagic)
	binary.LittleEndian.PutUint32(rec[4:], id)
	if _, _, err := c.sock.WriteMsgUnix(rec[:], unix.UnixRights(fd), nil); err != nil {
		t.Fatal(err)
	}
}
