package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/examples"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// rawConn is a framed connection that has said Hello, for sending calls
// that the client library would never send.
type rawConn struct {
	t    *testing.T
	conn transport.Conn
	seq  uint32
}

func (f *fixture) raw(t *testing.T) *rawConn {
	r, _ := rawSession(t, f.addr)
	return r
}

// rawSession is a raw connection that has said Hello, with the reply.
func rawSession(t *testing.T, addr string) (*rawConn, api.HelloReply) {
	t.Helper()
	r := rawDial(t, addr)
	var hello api.HelloReply
	if err := r.call(&api.Hello{Magic: api.Magic, Version: api.Version, Client: "raw"}, &hello); err != nil {
		t.Fatal(err)
	}
	return r, hello
}

// rawDial is a raw TCP connection to addr that has said nothing yet.
func rawDial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := tcp.Dial(context.Background(), addr, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, conn: c}
}

func (r *rawConn) sendBody(body, payload []byte) {
	r.t.Helper()
	if err := r.conn.Send(body, payload); err != nil {
		r.t.Fatal(err)
	}
}

// reply reads the next reply; it fails the test if none comes in time.
func (r *rawConn) reply(into api.Message) (api.Header, error) {
	r.t.Helper()
	type result struct {
		body []byte
		n    int
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		body, n, err := r.conn.Recv()
		ch <- result{append([]byte(nil), body...), n, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			return api.Header{}, res.err
		}
		if res.n > 0 {
			r.conn.ReadPayload(make([]byte, res.n))
		}
		h, fields, err := api.ReadHeader(res.body)
		if err != nil {
			r.t.Fatal(err)
		}
		callErr, err := api.DecodeReply(fields, into)
		if err != nil {
			r.t.Fatal(err)
		}
		return h, callErr
	case <-time.After(10 * time.Second):
		r.t.Fatal("no reply")
		return api.Header{}, nil
	}
}

func (r *rawConn) call(m api.Message, into api.Message) error {
	r.seq++
	r.sendBody(api.AppendRequest(nil, r.seq, 0, m), nil)
	h, err := r.reply(into)
	if err == nil && h.Seq != r.seq {
		r.t.Fatalf("reply to %d, want %d", h.Seq, r.seq)
	}
	return err
}

// expectClosed waits for the server to close the connection.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	_, err := r.reply(nil)
	if err == nil {
		r.t.Fatal("connection still open")
	}
}

// bystander is a second session whose work must be untouched by the
// misbehaving one: it checks a saxpy before and after.
type bystander struct {
	t   *testing.T
	dev *interpose.Device
	fn  *interpose.Function
	x   interpose.DevicePtr
}

func newBystander(t *testing.T, f *fixture) *bystander {
	s := f.dial(t)
	dev, err := s.Attach(0, interpose.Share{Fraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	mod, err := dev.LoadModule(examples.KernelsPTX)
	if err != nil {
		t.Fatal(err)
	}
	fn, err := mod.Function("fill_u32")
	if err != nil {
		t.Fatal(err)
	}
	x, err := dev.Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	b := &bystander{t, dev, fn, x}
	b.check(1)
	return b
}

func (b *bystander) check(v uint32) {
	b.t.Helper()
	if err := b.fn.Launch(b.dev.DefaultStream(), interpose.D1(4), interpose.D1(256), 0, b.x, v, uint64(1024)); err != nil {
		b.t.Fatal(err)
	}
	out := make([]byte, 4096)
	if err := b.dev.CopyDtoH(out, b.x); err != nil {
		b.t.Fatalf("bystander: %v", err)
	}
	for i := 0; i < 1024; i++ {
		if got := binary.LittleEndian.Uint32(out[4*i:]); got != v {
			b.t.Fatalf("bystander: x[%d] = %d, want %d", i, got, v)
		}
	}
}

func TestFramingErrorsCloseOnlyThatConnection(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	by := newBystander(t, f)
	tests := []struct {
		name  string
		bytes []byte // written raw on a fresh TCP connection after Hello
	}{
		{"body larger than the limit", binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 1<<30), 0)},
		{"payload larger than the limit", binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 8), 0xffff_fff0)},
		{"body shorter than a header", append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 3), 0), 1, 2, 3)},
		{"truncated frame then close", append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 100), 0), 1, 2, 3)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", f.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fc := transport.NewFramedConn(c, transport.Info{}, transport.Options{})
			r := &rawConn{t: t, conn: fc}
			if err := r.call(&api.Hello{Magic: api.Magic, Version: api.Version, Client: "bad"}, new(api.HelloReply)); err != nil {
				t.Fatal(err)
			}
			c.Write(tt.bytes)
			if tt.name == "truncated frame then close" {
				c.(*net.TCPConn).CloseWrite()
			}
			r.expectClosed()
			by.check(uint32(i + 2))
		})
	}
}

func TestHelloRequired(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	c, err := tcp.Dial(context.Background(), f.addr, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &rawConn{t: t, conn: c}
	r.sendBody(api.AppendRequest(nil, 1, 0, &api.Ping{}), nil)
	r.expectClosed()

	c2, _ := tcp.Dial(context.Background(), f.addr, transport.Options{})
	defer c2.Close()
	r2 := &rawConn{t: t, conn: c2}
	if err := r2.call(&api.Hello{Magic: 1234, Version: api.Version}, nil); err == nil {
		t.Fatal("bad magic accepted")
	}
}

func TestBadCalls(t *testing.T) {
	f := newFixture(t, 2, 64<<20)
	by := newBystander(t, f)
	r := f.raw(t)
	var att api.AttachReply
	if err := r.call(&api.Attach{Device: 0, ShareMillionths: 250_000}, &att); err != nil {
		t.Fatal(err)
	}
	var alloc api.MemAllocReply
	if err := r.call(&api.MemAlloc{Size: 4096}, &alloc); err != nil {
		t.Fatal(err)
	}
	def := api.DefaultStream(0)
	tests := []struct {
		name    string
		req     api.Message
		payload []byte
		want    api.Result
	}{
		{"unknown opcode", nil, nil, api.ErrNotSupported},
		{"malformed fields", nil, nil, api.ErrInvalidValue},
		{"alloc of zero bytes", &api.MemAlloc{Size: 0}, nil, api.ErrInvalidValue},
		{"alloc of an absurd size", &api.MemAlloc{Size: 1 << 62}, nil, api.ErrOutOfMemory},
		{"alloc of -1 bytes", &api.MemAlloc{Size: ^uint64(0)}, nil, api.ErrOutOfMemory},
		{"alloc on a device the session lacks", &api.MemAlloc{Ordinal: 7, Size: 16}, nil, api.ErrInvalidDevice},
		{"free of a pointer not ours", &api.MemFree{Ptr: uint64(by.x)}, nil, api.ErrInvalidValue},
		{"free inside an allocation", &api.MemFree{Ptr: alloc.Ptr + 8}, nil, api.ErrInvalidValue},
		{"copy to another session's memory", &api.MemcpyHtoD{Dst: uint64(by.x), Stream: def}, []byte{1, 2, 3, 4}, api.ErrInvalidValue},
		{"copy past the end of an allocation", &api.MemcpyHtoD{Dst: alloc.Ptr + 4094, Stream: def}, []byte{1, 2, 3, 4}, api.ErrInvalidValue},
		{"read of another session's memory", &api.MemcpyDtoH{Src: uint64(by.x), Size: 4, Stream: def}, nil, api.ErrInvalidValue},
		{"read of a wrapping range", &api.MemcpyDtoH{Src: alloc.Ptr, Size: ^uint64(0) - 2, Stream: def}, nil, api.ErrInvalidValue},
		{"read larger than a frame", &api.MemcpyDtoH{Src: alloc.Ptr, Size: 1 << 40, Stream: def}, nil, api.ErrInvalidValue},
		{"memset past the end", &api.Memset{Dst: alloc.Ptr, ElemSize: 4, Count: 1025, Stream: def}, nil, api.ErrInvalidValue},
		{"memset of 3-byte elements", &api.Memset{Dst: alloc.Ptr, ElemSize: 3, Count: 1, Stream: def}, nil, api.ErrInvalidValue},
		{"memset count overflow", &api.Memset{Dst: alloc.Ptr, ElemSize: 4, Count: 1 << 62, Stream: def}, nil, api.ErrInvalidValue},
		{"dtod from another session", &api.MemcpyDtoD{Dst: alloc.Ptr, Src: uint64(by.x), Size: 4, Stream: def}, nil, api.ErrInvalidValue},
		{"unknown stream", &api.StreamSynchronize{Stream: 99}, nil, api.ErrInvalidHandle},
		{"destroy the default stream", &api.StreamDestroy{Stream: def}, nil, api.ErrInvalidHandle},
		{"stream with a reserved handle", &api.StreamCreate{Stream: api.DefaultStreamBase + 5}, nil, api.ErrInvalidHandle},
		{"unknown event", &api.EventQuery{Event: 5}, nil, api.ErrInvalidHandle},
		{"unknown module", &api.ModuleGetFunction{Module: 5, Function: 6, Name: "x"}, nil, api.ErrInvalidHandle},
		{"launch of an unknown function", &api.LaunchKernel{Function: 77, Stream: def, Grid: [3]uint32{1, 1, 1}, Block: [3]uint32{1, 1, 1}}, nil, api.ErrInvalidHandle},
		{"module image that is not PTX", &api.ModuleLoad{Module: 3}, []byte("hello"), api.ErrInvalidImage},
		{"payload on a call without one", &api.Ping{}, []byte{1, 2, 3}, api.ErrInvalidValue},
		{"second hello", &api.Hello{Magic: api.Magic, Version: api.Version}, nil, api.ErrIllegalState},
		{"attach with no share", &api.Attach{Device: -1}, nil, api.ErrInvalidValue},
		{"attach of a device that does not exist", &api.Attach{Device: 9, ShareMillionths: 1000}, nil, api.ErrInvalidDevice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.seq++
			var body []byte
			switch tt.name {
			case "unknown opcode":
				body = binary.LittleEndian.AppendUint16(nil, 999)
				body = binary.LittleEndian.AppendUint16(body, 0)
				body = binary.LittleEndian.AppendUint32(body, r.seq)
			case "malformed fields":
				body = api.AppendRequest(nil, r.seq, 0, &api.MemAlloc{Size: 1})[:api.HeaderSize+3]
			default:
				body = api.AppendRequest(nil, r.seq, 0, tt.req)
			}
			r.sendBody(body, tt.payload)
			h, err := r.reply(nil)
			if h.Seq != r.seq {
				t.Fatalf("reply to %d, want %d", h.Seq, r.seq)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// The session still works after all that, and so does the other one.
	if err := r.call(&api.Memset{Dst: alloc.Ptr, Value: 7, ElemSize: 4, Count: 1024, Stream: def}, nil); err != nil {
		t.Fatal(err)
	}
	by.check(42)
}

// TestAsyncErrorsAreLatched: an asynchronous call that fails gets no reply;
// the next synchronising call reports it, once.
func TestAsyncErrorsAreLatched(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	s := f.dial(t)
	dev, err := s.Attach(0, interpose.Share{Fraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	st := dev.DefaultStream()
	if err := st.MemsetAsync(0xdead0000, 0, 4, 16); err != nil {
		t.Fatalf("async call failed at once: %v", err)
	}
	if err := st.Synchronize(); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("Synchronize = %v, want the latched CUDA_ERROR_INVALID_VALUE", err)
	}
	if err := st.Synchronize(); err != nil {
		t.Fatalf("second Synchronize = %v, want nil", err)
	}
}

// TestClientVanishesMidCopy: a client that dies halfway through a payload
// has its session ended and its memory freed; the server goes on.
func TestClientVanishesMidCopy(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	by := newBystander(t, f)
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	fc := transport.NewFramedConn(c, transport.Info{}, transport.Options{})
	r := &rawConn{t: t, conn: fc}
	if err := r.call(&api.Hello{Magic: api.Magic, Version: api.Version, Client: "vanishing"}, new(api.HelloReply)); err != nil {
		t.Fatal(err)
	}
	if err := r.call(&api.Attach{Device: 0, ShareMillionths: 500_000}, new(api.AttachReply)); err != nil {
		t.Fatal(err)
	}
	var alloc api.MemAllocReply
	if err := r.call(&api.MemAlloc{Size: 16 << 20}, &alloc); err != nil {
		t.Fatal(err)
	}
	// A frame announcing 16 MiB, of which only 1 MiB arrives.
	body := api.AppendRequest(nil, 9, 0, &api.MemcpyHtoD{Dst: alloc.Ptr, Stream: api.DefaultStream(0)})
	hdr := binary.LittleEndian.AppendUint32(nil, uint32(len(body)))
	hdr = binary.LittleEndian.AppendUint32(hdr, 16<<20)
	c.Write(append(hdr, body...))
	c.Write(make([]byte, 1<<20))
	c.Close()
	waitFor(t, func() bool {
		st := f.srv.Status()
		return st.Devices[0].Sessions == 1 && st.Devices[0].SessionBytes == 4096
	})
	by.check(3)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
