package rdma

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

// BenchmarkTransfer sends payloads one way over the emulation and reports
// the CPU copies each payload byte cost, both sides together, beside the
// physical floor of this process: one memmove of the same bytes.
func BenchmarkTransfer(b *testing.B) {
	for _, bc := range []struct {
		name     string
		size     int
		toServer bool
	}{
		{"eager-4KiB-h2d", 4 << 10, true},
		{"staged-4MiB-h2d", 4 << 20, true},
		{"written-4MiB-d2h", 4 << 20, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFabric(b, Config{}, EmuOptions{})
			client, server := f.pair(b)
			a, r := client, server
			if !bc.toServer {
				a, r = server, client
			}
			payload, dst := pattern(bc.size, 1), make([]byte, bc.size)
			done := make(chan error, 1)
			go func() {
				for range b.N {
					if _, _, err := r.Recv(); err != nil {
						done <- err
						return
					}
					if err := r.ReadPayload(dst); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := a.Send(nil, payload); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			copied := a.Stats().CopiedBytes + r.Stats().CopiedBytes
			b.ReportMetric(float64(copied)/float64(int64(b.N)*int64(bc.size)), "copies/byte")
		})
	}
}

// BenchmarkMemmoveFloor is the floor the transfers stand beside.
func BenchmarkMemmoveFloor(b *testing.B) {
	src, dst := pattern(4<<20, 1), make([]byte, 4<<20)
	b.SetBytes(int64(len(src)))
	for range b.N {
		copy(dst, src)
	}
}

// BenchmarkRoundTrip: an empty frame there and back through the
// connection, beside a bare SEND there and back between two QPs of the
// same fabric polled in loops, with no credits, frames or goroutine
// hand-offs. On hardware the second is the floor; over the emulation on
// few CPUs it is not (two busy pollers starve the emulated wire), so read
// it as a reference only.
//
// The conn rows run with the poller spinning for several lengths before it
// sleeps: on a machine with few CPUs a spinner that does not yield holds
// up the goroutines that would answer it (before it yielded, a 5 us spin
// made a round trip over the emulation 25 us on 2 vCPUs).
func BenchmarkRoundTrip(b *testing.B) {
	for _, spin := range []time.Duration{time.Microsecond, DefaultSpin, 20 * time.Microsecond} {
		b.Run(fmt.Sprintf("conn/spin=%v", spin), func(b *testing.B) {
			f := newFabric(b, Config{Spin: spin}, EmuOptions{})
			client, server := f.pair(b)
			go transport.Echo(server)
			body := []byte("ping")
			b.ResetTimer()
			for range b.N {
				if err := client.Send(body, nil); err != nil {
					b.Fatal(err)
				}
				if _, _, err := client.Recv(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("verbs-busy-poll", func(b *testing.B) {
		fab := NewEmulation()
		qa, mra := rawQP(b, fab.Open("a", EmuOptions{}))
		qb, mrb := rawQP(b, fab.Open("b", EmuOptions{}))
		if err := qa.Connect(0, -1, Endpoint{QPN: qb.Num()}); err != nil {
			b.Fatal(err)
		}
		if err := qb.Connect(0, -1, Endpoint{QPN: qa.Num()}); err != nil {
			b.Fatal(err)
		}
		// Each side has a receive posted before the other can send to it,
		// as credits would ensure: a SEND never meets receiver-not-ready.
		qa.PostRecv(RecvWR{Local: SGE{MR: mra, Len: 64}})
		qb.PostRecv(RecvWR{Local: SGE{MR: mrb, Len: 64}})
		done := make(chan struct{})
		go func() { // b echoes
			defer close(done)
			for range b.N {
				if !awaitRecv(qb) {
					return
				}
				qb.PostRecv(RecvWR{Local: SGE{MR: mrb, Len: 64}})
				qb.PostSend(SendWR{Op: OpSend, Local: SGE{MR: mrb, Len: 4}, Inline: true})
			}
		}()
		b.ResetTimer()
		for range b.N {
			qa.PostSend(SendWR{Op: OpSend, Local: SGE{MR: mra, Len: 4}, Inline: true})
			if !awaitRecv(qa) {
				b.Fatal("no echo")
			}
			qa.PostRecv(RecvWR{Local: SGE{MR: mra, Len: 64}})
		}
		b.StopTimer()
		<-done
		qa.Close()
		qb.Close()
	})
}

func rawQP(b *testing.B, dev Device) (QP, MR) {
	dom, err := dev.NewDomain()
	if err != nil {
		b.Fatal(err)
	}
	qp, err := dom.CreateQP(QPConfig{SendDepth: 64, RecvDepth: 64, MaxInline: 64, RNRRetry: 7})
	if err != nil {
		b.Fatal(err)
	}
	mr, err := dom.Register(make([]byte, 4096), AccessLocalWrite)
	if err != nil {
		b.Fatal(err)
	}
	return qp, mr
}

// awaitRecv polls q until a receive completes; false when q failed.
func awaitRecv(q QP) bool {
	wc := make([]Completion, 4)
	for {
		n, _ := q.Poll(wc)
		for _, c := range wc[:n] {
			if c.Status != StatusSuccess {
				return false
			}
			if c.Op == OpRecv {
				return true
			}
		}
		if n == 0 {
			runtime.Gosched()
		}
	}
}
