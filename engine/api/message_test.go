package api

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// samples holds one filled request or reply of every layout.
var samples = []Message{
	&Hello{Magic: Magic, Version: Version, Client: "alice@host/42", Token: "t0k", BootID: "b-1"},
	&HelloReply{Server: "gpu-7", Version: Version, BootID: "b-2", Devices: 8, Session: 99, Offers: []string{"tcp:10.0.0.1:7000", "shm:@gpufabric-7000"}, BulkKey: "9f86d081884c7d65"},
	&JoinBulk{Session: 99, Key: "9f86d081884c7d65"},
	&Ping{},
	&Goodbye{},
	&Echo{},
	&Describe{Selection: "shm: p50 3µs (chosen); tcp: p50 18µs"},
	&ServerStatus{},
	&Attach{Device: -1, ShareMillionths: 250_000},
	&AttachReply{Ordinal: 1, Device: 3, QuotaBytes: 4 << 30},
	&DeviceGet{Ordinal: 2},
	&DeviceInfo{Name: "NVIDIA H200", UUID: [16]byte{1, 2, 3}, TotalMem: 1 << 34, DriverVersion: 12080, Attrs: []int32{0, 1024, -1}, AddrLow: 1 << 45, AddrHigh: 1<<45 + 1<<40},
	&MemGetInfo{Ordinal: 1},
	&MemInfo{Free: 10, Total: 20},
	&CtxSynchronize{Ordinal: 3},
	&MemAlloc{Ordinal: 1, Size: 1 << 40},
	&MemAllocReply{Ptr: 0x7000_0000_0000},
	&MemFree{Ptr: 0x7000_0000_0100},
	&MemcpyHtoD{Dst: 0x1000, Stream: 7},
	&MemcpyDtoH{Src: 0x1000, Size: 4096, Stream: DefaultStream(0)},
	&MemcpyDtoD{Dst: 1, Src: 2, Size: 3, Stream: 4},
	&Memset{Dst: 0x2000, Value: 0xdeadbeef, ElemSize: 4, Count: 16, Stream: 5},
	&ModuleLoad{Module: 1, Ordinal: 0},
	&ModuleUnload{Module: 1},
	&ModuleGetFunction{Module: 1, Function: 2, Name: "saxpy"},
	&FunctionInfo{Params: []Param{{0, 4}, {4, 4}, {8, 8}, {16, 8}}},
	&ModuleGetGlobal{Module: 1, Name: "counter"},
	&GlobalInfo{Ptr: 0x3000, Size: 4},
	&LaunchKernel{Function: 2, Stream: 3, Grid: [3]uint32{4, 1, 1}, Block: [3]uint32{256, 1, 1}, SharedMem: 0, Params: []byte{1, 2, 3, 4}},
	&StreamCreate{Stream: 5, Ordinal: 0, Flags: 1, Priority: -1},
	&StreamDestroy{Stream: 5},
	&StreamSynchronize{Stream: 5},
	&StreamQuery{Stream: 5},
	&StreamWaitEvent{Stream: 5, Event: 6},
	&EventCreate{Event: 6, Ordinal: 0, Flags: 2},
	&EventRecord{Event: 6, Stream: 5},
	&EventSynchronize{Event: 6},
	&EventQuery{Event: 6},
	&EventElapsedTime{Start: 6, End: 7},
	&ElapsedTime{Milliseconds: 1.5},
	&EventDestroy{Event: 6},
}

func isReply(m Message) bool {
	r := NewReply(m.Op())
	return r != nil && reflect.TypeOf(r) == reflect.TypeOf(m)
}

func TestRoundTrip(t *testing.T) {
	seen := map[Op]bool{}
	for _, m := range samples {
		t.Run(reflect.TypeOf(m).Elem().Name(), func(t *testing.T) {
			if isReply(m) {
				body := AppendReply(nil, m.Op(), 77, 0, nil, m)
				h, fields, err := ReadHeader(body)
				if err != nil || h.Seq != 77 || h.Flags&FlagReply == 0 || h.Op != m.Op() {
					t.Fatalf("header %+v, %v", h, err)
				}
				got := NewReply(m.Op())
				callErr, err := DecodeReply(fields, got)
				if err != nil || callErr != nil {
					t.Fatalf("DecodeReply: %v %v", callErr, err)
				}
				if !reflect.DeepEqual(got, m) {
					t.Fatalf("got %+v, want %+v", got, m)
				}
				return
			}
			seen[m.Op()] = true
			body := AppendRequest(nil, 5, FlagAsync, m)
			h, fields, err := ReadHeader(body)
			if err != nil || h.Seq != 5 || h.Flags != FlagAsync {
				t.Fatalf("header %+v, %v", h, err)
			}
			got, err := DecodeRequest(h, fields)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("got %+v, want %+v", got, m)
			}
			// Every strict prefix must fail cleanly.
			for n := 0; n < len(fields); n++ {
				if _, err := DecodeRequest(h, fields[:n]); !errors.Is(err, ErrMalformed) {
					t.Fatalf("prefix %d: err %v, want ErrMalformed", n, err)
				}
			}
			if _, err := DecodeRequest(h, append(bytes.Clone(fields), 0)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("trailing byte: err %v", err)
			}
		})
	}
	for op := Op(1); op < opEnd; op++ {
		if !seen[op] {
			t.Errorf("no sample request for %v", op)
		}
	}
}

func TestErrorReplyCarriesDetail(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{ErrOutOfMemory, "CUDA_ERROR_OUT_OF_MEMORY"},
		{Errorf(ErrOutOfMemory, "share of %d bytes", 5), "CUDA_ERROR_OUT_OF_MEMORY: share of 5 bytes"},
	}
	for _, tt := range tests {
		body := AppendReply(nil, OpMemAlloc, 1, 0, tt.err, &MemAllocReply{Ptr: 1})
		_, fields, _ := ReadHeader(body)
		reply := new(MemAllocReply)
		callErr, err := DecodeReply(fields, reply)
		if err != nil || !errors.Is(callErr, ErrOutOfMemory) || callErr.Error() != tt.want {
			t.Errorf("callErr %v err %v, want %q", callErr, err, tt.want)
		}
		if reply.Ptr != 0 {
			t.Errorf("a failed reply filled its fields")
		}
	}
}

func TestUnknownOp(t *testing.T) {
	_, err := DecodeRequest(Header{Op: 999}, nil)
	if !errors.Is(err, ErrUnknownOp) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
}

func TestHostileCount(t *testing.T) {
	// A FunctionInfo claiming 2^32-1 params in a 4-byte body must not allocate.
	e := NewEncoder(nil)
	e.U32(0)
	e.U32(0xffff_ffff)
	_, err := DecodeReply(e.Bytes(), new(FunctionInfo))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
}

func TestResultOf(t *testing.T) {
	tests := []struct {
		err  error
		want Result
	}{
		{nil, Success},
		{ErrOutOfMemory, ErrOutOfMemory},
		{Errorf(ErrInvalidHandle, "stream %d", 3), ErrInvalidHandle},
		{errors.Join(errors.New("x"), Errorf(ErrNotFound, "k")), ErrNotFound},
		{errors.New("plain"), ErrUnknown},
	}
	for _, tt := range tests {
		if got := ResultOf(tt.err); got != tt.want {
			t.Errorf("ResultOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if !errors.Is(Errorf(ErrInvalidValue, "x"), ErrInvalidValue) {
		t.Error("errors.Is does not match an *Error to its Result")
	}
}

// FuzzDecodeRequest feeds arbitrary bodies to every request decoder: none may
// panic, and whatever decodes must encode back to the same bytes.
func FuzzDecodeRequest(f *testing.F) {
	for _, m := range samples {
		if !isReply(m) {
			f.Add(AppendRequest(nil, 1, 0, m))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		h, fields, err := ReadHeader(body)
		if err != nil {
			return
		}
		m, err := DecodeRequest(h, fields)
		if err != nil {
			return
		}
		again := AppendRequest(nil, h.Seq, h.Flags, m)
		if !bytes.Equal(again[HeaderSize:], fields) {
			t.Fatalf("%v: re-encoded %x, decoded from %x", h.Op, again[HeaderSize:], fields)
		}
	})
}

// FuzzDecodeReply does the same for every reply layout.
func FuzzDecodeReply(f *testing.F) {
	for _, m := range samples {
		if isReply(m) {
			f.Add(uint16(m.Op()), AppendReply(nil, m.Op(), 1, 0, nil, m)[HeaderSize:])
		}
	}
	f.Fuzz(func(t *testing.T, op uint16, fields []byte) {
		m := NewReply(Op(op))
		if m == nil {
			return
		}
		callErr, err := DecodeReply(fields, m)
		if err != nil || callErr != nil {
			return
		}
		again := AppendReply(nil, Op(op), 1, 0, nil, m)
		if !bytes.Equal(again[HeaderSize:], fields) {
			t.Fatalf("%v: re-encoded %x, decoded from %x", Op(op), again[HeaderSize:], fields)
		}
	})
}

func TestCheckBulk(t *testing.T) {
	call := Header{Op: OpMemcpyHtoD, Flags: FlagAsync | FlagBulkPayload, Seq: 7}
	reply := Header{Op: OpMemcpyDtoH, Flags: FlagReply | FlagBulkPayload, Seq: 9}
	tests := []struct {
		name      string
		body      []byte
		announced Header
		wantOK    bool
	}{
		{"a call's", AppendBulk(nil, call), call, true},
		{"a reply's", AppendBulk(nil, reply), reply, true},
		{"another sequence number", AppendBulk(nil, Header{Op: call.Op, Seq: 8}), call, false},
		{"another op", AppendBulk(nil, Header{Op: OpEcho, Seq: 7}), call, false},
		{"a call's for a reply", AppendBulk(nil, Header{Op: reply.Op, Seq: reply.Seq}), reply, false},
		{"fields after the header", append(AppendBulk(nil, call), 1), call, false},
		{"shorter than a header", []byte{1, 2}, call, false},
	}
	for _, tt := range tests {
		if err := CheckBulk(tt.body, tt.announced); (err == nil) != tt.wantOK {
			t.Errorf("%s: CheckBulk = %v", tt.name, err)
		}
	}
}
