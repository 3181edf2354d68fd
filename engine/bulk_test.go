package engine_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
)

// countingListener counts the payload bytes that cross the connections it
// accepts, both ways.
type countingListener struct {
	transport.Listener
	in, out atomic.Int64
}

func (l *countingListener) Accept() (transport.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	transport.Conn
	l *countingListener
}

func (c *countingConn) Send(body, payload []byte) error {
	c.l.out.Add(int64(len(payload)))
	return c.Conn.Send(body, payload)
}

func (c *countingConn) ReadPayload(dst []byte) error {
	c.l.in.Add(int64(len(dst)))
	return c.Conn.ReadPayload(dst)
}

// bulkServer serves one emulated device over TCP and shared memory, each
// listener counting the payload bytes it carries.
func bulkServer(t *testing.T) (addr string, tcpL, shmL *countingListener) {
	t.Helper()
	var counting []*countingListener
	f := newFixtureWith(t, engine.Config{}, 1, 256<<20, func(l transport.Listener) transport.Listener {
		c := &countingListener{Listener: l}
		counting = append(counting, c)
		return c
	})
	return f.addr, counting[0], counting[1]
}

// With calls over TCP and the bulk lane forced onto shared memory, large
// copies' payloads cross shared memory and nothing else does, and they stay
// in order with the calls around them.
func TestBulkLaneCarriesLargePayloads(t *testing.T) {
	addr, tcpL, shmL := bulkServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := interpose.Connect(ctx, addr, interpose.Options{Client: t.Name(), Transport: "tcp", BulkTransport: "shm"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if sel := s.Selection(); sel.CallLane != "tcp" || sel.BulkLane != "shm" || s.Transport().Transport != "tcp" {
		t.Fatalf("selection %+v over %s; want calls on tcp, bulk on shm", sel, s.Transport().Transport)
	}
	dev, mod := attach(t, s, 1)
	fill := function(t, mod, "fill_u32")
	const size = 8 << 20
	ptr, err := dev.Alloc(size)
	if err != nil {
		t.Fatal(err)
	}
	tcpIn, tcpOut := tcpL.in.Load(), tcpL.out.Load() // the module image and probes so far

	// Synchronous copies there and back.
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*7 + i>>12)
	}
	if err := dev.CopyHtoD(ptr, want); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, size)
	if err := dev.CopyDtoH(got, ptr); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("8 MiB round trip over the bulk lane changed the data")
	}

	// Asynchronous: a copy in, a kernel over its first 4 KiB, a copy out, in
	// stream order although the copies' bytes take the other lane.
	st, err := dev.NewStream(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		want[i] = byte(i * 13)
	}
	clear(got)
	if err := st.CopyHtoDAsync(ptr, want); err != nil {
		t.Fatal(err)
	}
	if err := fill.Launch(st, interpose.D1(4), interpose.D1(256), 0, ptr, uint32(0xabcdef01), uint64(1024)); err != nil {
		t.Fatal(err)
	}
	if err := st.CopyDtoHAsync(got, ptr); err != nil {
		t.Fatal(err)
	}
	if err := st.Synchronize(); err != nil {
		t.Fatal(err)
	}
	for i := range 1024 {
		binary.LittleEndian.PutUint32(want[4*i:], 0xabcdef01)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("copy, kernel, copy over two lanes did not run in stream order")
	}

	if in, out := shmL.in.Load(), shmL.out.Load(); in < 2*size || out < 2*size {
		t.Errorf("shared memory carried %d bytes in and %d out; want the copies' %d each way", in, out, 2*size)
	}
	if in, out := tcpL.in.Load()-tcpIn, tcpL.out.Load()-tcpOut; in != 0 || out != 0 {
		t.Errorf("the call lane carried %d payload bytes in and %d out during the copies; want none", in, out)
	}
	// Small copies stay on the call lane.
	if err := dev.CopyHtoD(ptr, want[:4096]); err != nil {
		t.Fatal(err)
	}
	if in := tcpL.in.Load() - tcpIn; in != 4096 {
		t.Errorf("a 4 KiB copy put %d bytes on the call lane, want 4096", in)
	}
}

// The bulk lane is chosen by bandwidth like the call lane by latency: on
// one host shared memory wins both, and the session keeps one connection.
func TestBulkLaneSameAsCallLane(t *testing.T) {
	addr, _, shmL := bulkServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := interpose.Connect(ctx, addr, interpose.Options{Client: t.Name(), Transport: "shm"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if sel := s.Selection(); sel.BulkLane != "shm" || sel.CallLane != "shm" {
		t.Fatalf("selection %+v", sel)
	}
	dev, _ := attach(t, s, 1)
	ptr, err := dev.Alloc(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.CopyHtoD(ptr, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if in := shmL.in.Load(); in < 1<<20 {
		t.Errorf("shared memory carried %d bytes", in)
	}
}

// rawJoin dials a connection and asks it to join session id as its bulk lane.
func rawJoin(t *testing.T, addr string, id uint64, key string) (*rawConn, error) {
	t.Helper()
	r := rawDial(t, addr)
	return r, r.call(&api.JoinBulk{Session: id, Key: key}, nil)
}

func TestBulkLaneBadInput(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	by := newBystander(t, f)
	owner, hello := rawSession(t, f.addr)

	// A join that has not authenticated learns nothing: a wrong key for a
	// session that exists and a session that does not get one answer.
	var answers []string
	t.Run("wrong key", func(t *testing.T) {
		r, err := rawJoin(t, f.addr, hello.Session, "0123")
		if !errors.Is(err, api.ErrNotPermitted) {
			t.Fatalf("join with a wrong key: %v", err)
		}
		answers = append(answers, err.Error())
		r.expectClosed()
	})
	t.Run("no such session", func(t *testing.T) {
		r, err := rawJoin(t, f.addr, hello.Session+1000, hello.BulkKey)
		if !errors.Is(err, api.ErrNotPermitted) {
			t.Fatalf("join of no session: %v", err)
		}
		answers = append(answers, err.Error())
		r.expectClosed()
	})
	if len(answers) == 2 && answers[0] != answers[1] {
		t.Errorf("a join tells a wrong key (%q) from no session (%q)", answers[0], answers[1])
	}
	t.Run("payload marked for a lane the session lacks", func(t *testing.T) {
		owner.seq++
		owner.sendBody(api.AppendRequest(nil, owner.seq, api.FlagBulkPayload, &api.Echo{}), nil)
		if _, err := owner.reply(nil); !errors.Is(err, api.ErrInvalidValue) {
			t.Fatalf("bulk payload without a bulk lane: %v", err)
		}
		if err := owner.call(&api.Ping{}, nil); err != nil {
			t.Fatalf("session after a refused bulk payload: %v", err)
		}
	})

	bulk, err := rawJoin(t, f.addr, hello.Session, hello.BulkKey)
	if err != nil {
		t.Fatalf("join with the right key: %v", err)
	}
	t.Run("second join", func(t *testing.T) {
		r, err := rawJoin(t, f.addr, hello.Session, hello.BulkKey)
		if !errors.Is(err, api.ErrIllegalState) {
			t.Fatalf("second join: %v", err)
		}
		r.expectClosed()
	})
	t.Run("echo over the bulk lane", func(t *testing.T) {
		owner.seq++
		want := bytes.Repeat([]byte("bulk"), 1<<16)
		owner.sendBody(api.AppendRequest(nil, owner.seq, api.FlagBulkPayload|api.FlagBulkReply, &api.Echo{}), nil)
		bulk.sendBody(api.AppendBulk(nil, api.Header{Op: api.OpEcho, Seq: owner.seq}), want)
		h, err := owner.reply(nil)
		if err != nil || h.Flags != api.FlagReply|api.FlagBulkPayload {
			t.Fatalf("echo reply flags %#x, err %v", h.Flags, err)
		}
		body, n, err := bulk.conn.Recv()
		if err != nil {
			t.Fatal(err)
		}
		bh, _, _ := api.ReadHeader(body)
		got := make([]byte, n)
		if err := bulk.conn.ReadPayload(got); err != nil {
			t.Fatal(err)
		}
		if bh.Seq != owner.seq || bh.Flags != api.FlagReply|api.FlagBulkPayload || !bytes.Equal(got, want) {
			t.Fatalf("bulk reply frame %+v with %d bytes", bh, n)
		}
	})
	t.Run("bulk frame out of step ends only that session", func(t *testing.T) {
		owner.seq++
		owner.sendBody(api.AppendRequest(nil, owner.seq, api.FlagBulkPayload, &api.Echo{}), nil)
		bulk.sendBody(api.AppendBulk(nil, api.Header{Op: api.OpEcho, Seq: owner.seq + 5}), []byte("late"))
		owner.expectClosed()
		bulk.expectClosed()
		by.check(7)
	})
}

// Many goroutines of one session copying payloads on both sides of the
// bulk threshold, synchronously and not, while others make small calls:
// every bulk frame must meet its announcement, and every byte come back.
func TestBulkLaneUnderConcurrentLoad(t *testing.T) {
	f := newFixture(t, 1, 256<<20)
	f.transport = "tcp+shm"
	s := f.dial(t)
	dev, _ := attach(t, s, 1)
	sizes := []int{4 << 10, 64<<10 - 8, 64 << 10, 64<<10 + 8, 1 << 20, 5<<20 + 12}
	const workers, rounds = 6, 12
	errs := make(chan error, workers+1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // small calls in between
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.Ping(); err != nil {
				errs <- err
				return
			}
		}
	})
	var copiers sync.WaitGroup
	for w := range workers {
		copiers.Go(func() {
			st, err := dev.NewStream(0, 0)
			if err != nil {
				errs <- err
				return
			}
			ptr, err := dev.Alloc(uint64(sizes[len(sizes)-1]))
			if err != nil {
				errs <- err
				return
			}
			for r := range rounds {
				n := sizes[(w+r)%len(sizes)]
				in, out := make([]byte, n), make([]byte, n)
				for i := range in {
					in[i] = byte(w*31 + r*7 + i)
				}
				if r%2 == 0 {
					err = dev.CopyHtoD(ptr, in)
					if err == nil {
						err = dev.CopyDtoH(out, ptr)
					}
				} else {
					err = st.CopyHtoDAsync(ptr, in)
					if err == nil {
						err = st.CopyDtoHAsync(out, ptr)
					}
					if err == nil {
						err = st.Synchronize()
					}
				}
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(in, out) {
					errs <- fmt.Errorf("worker %d round %d: %d bytes came back changed", w, r, n)
					return
				}
			}
		})
	}
	copiers.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
