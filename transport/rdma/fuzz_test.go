package rdma

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// FuzzPeerMessage SENDs whatever bytes the fuzzer makes, as one message
// from a client that honours credits but not the message format, to a
// server reading frames; then the client goes. The server must neither
// panic nor hang: Recv ends with a frame, io.EOF, or an error.
func FuzzPeerMessage(f *testing.F) {
	msg := func(h header, data []byte) []byte {
		b := make([]byte, hdrSize+len(data))
		h.put(b)
		copy(b[hdrSize:], data)
		return b
	}
	f.Add(msg(header{kind: kindFrame, a: 3}, []byte("abc")))
	f.Add(msg(header{kind: kindFrame, a: 3, b: 5}, []byte("abcde")))
	f.Add(msg(header{kind: kindFrame, flags: modeStaged, b: 1 << 20}, nil))
	f.Add(msg(header{kind: kindFrame, flags: modeRTS, b: 1 << 20}, nil))
	f.Add(msg(header{kind: kindStaged, a: 1 << 30, b: 1 << 40}, nil))
	f.Add(msg(header{kind: kindGrant, grants: 65535}, nil))
	f.Add(msg(header{kind: kindRelease, a: 1000}, nil))
	f.Add(msg(header{kind: kindCTS}, nil))
	f.Add(msg(header{kind: 99}, nil))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, m []byte) {
		if len(m) > DefaultSlotSize {
			m = m[:DefaultSlotSize]
		}
		fab := newFabric(t, Config{StagingSlots: 2, StagingSlotSize: 64 << 10}, EmuOptions{})
		client, server := fab.pair(t)
		client.mu.Lock()
		i := client.freeSlots[len(client.freeSlots)-1]
		client.freeSlots = client.freeSlots[:len(client.freeSlots)-1]
		client.credits--
		off := i * client.cfg.SlotSize
		copy(client.sendMR.Bytes()[off:], m)
		err := client.qp.PostSend(SendWR{ID: uint64(i), Op: OpSend, Local: SGE{MR: client.sendMR, Off: off, Len: len(m)}})
		client.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			for {
				_, n, err := server.Recv()
				if err == nil && n > 0 {
					err = server.ReadPayload(make([]byte, n))
				}
				if err != nil {
					done <- err
					return
				}
			}
		}()
		waitFor(t, func() bool {
			client.mu.Lock()
			defer client.mu.Unlock()
			return len(client.freeSlots) == client.cfg.RecvDepth || client.err != nil
		})
		client.Close()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("Recv loop ended without an error")
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("server still reading 10s after the peer went; message %x", m)
		}
	})
}

// FuzzHello checks a peer's setup message: whatever it says, check either
// accepts it within the limits or says why not.
func FuzzHello(f *testing.F) {
	good := hello{RecvDepth: DefaultRecvDepth, SlotSize: DefaultSlotSize, StagingSlots: 8, StagingSlotSize: 1 << 20}
	copy(good.Magic[:], helloMagic)
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, &good)
	f.Add(b.Bytes())
	f.Add(make([]byte, binary.Size(good)))
	cfg := Config{}.withDefaults()
	f.Fuzz(func(t *testing.T, raw []byte) {
		var h hello
		if err := binary.Read(bytes.NewReader(raw), binary.LittleEndian, &h); err != nil {
			return
		}
		err := h.check(cfg)
		if err != nil {
			if !errors.Is(err, ErrHandshake) {
				t.Fatalf("check failed without ErrHandshake: %v", err)
			}
			return
		}
		if h.StagingSlots > maxStagingSlots || h.StagingSlotSize > maxStagingSlotSize || int(h.RecvDepth) != cfg.RecvDepth {
			t.Fatalf("check accepted %+v", h)
		}
	})
}
