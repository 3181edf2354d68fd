package engine_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/examples"
)

// TestStageClocksPutTimeWhereItGoes: a synchronisation behind a slow
// kernel spends its time in the device stage; a ping never reaches one.
func TestStageClocksPutTimeWhereItGoes(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	r := f.raw(t)
	if err := r.call(&api.Attach{Device: 0, ShareMillionths: 500_000}, new(api.AttachReply)); err != nil {
		t.Fatal(err)
	}
	r.seq++
	r.sendBody(api.AppendRequest(nil, r.seq, 0, &api.ModuleLoad{Module: 1}), examples.KernelsPTX)
	if _, err := r.reply(nil); err != nil {
		t.Fatal(err)
	}
	if err := r.call(&api.ModuleGetFunction{Module: 1, Function: 2, Name: "spin"}, new(api.FunctionInfo)); err != nil {
		t.Fatal(err)
	}
	const kernel = 5 * time.Millisecond
	const samples = 4
	for i := 1; i <= samples; i++ {
		// A launch, then the sampled call (sequence number 64i) behind it.
		r.seq = uint32(64*i - 1)
		params := binary.LittleEndian.AppendUint64(nil, uint64(kernel))
		r.sendBody(api.AppendRequest(nil, r.seq, api.FlagAsync, &api.LaunchKernel{
			Function: 2, Stream: api.DefaultStream(0), Grid: [3]uint32{1, 1, 1}, Block: [3]uint32{1, 1, 1}, Params: params,
		}), nil)
		if err := r.call(&api.StreamSynchronize{Stream: api.DefaultStream(0)}, nil); err != nil {
			t.Fatal(err)
		}
		// And a ping the reader answers alone (sequence number 64i+32 is
		// not sampled; 64(i+samples) is).
		r.seq = uint32(64*(i+samples) - 1)
		if err := r.call(&api.Ping{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A call's clock stops just after its reply is written: the client
	// may see the last reply before the server has counted it.
	var st api.Status
	stages := map[string]api.Histogram{}
	waitFor(t, func() bool {
		st = f.srv.Status()
		for _, sh := range st.Sessions[0].Stages {
			stages[sh.Stage] = sh.Times
		}
		server := uint64(0)
		for _, sh := range st.Stages {
			if sh.Stage == api.StageServer {
				server = sh.Times.Count
			}
		}
		return stages[api.StageServer].Count >= 2*samples && server >= 2*samples
	})
	mean := func(h api.Histogram) time.Duration { return time.Duration(h.Sum / max(h.Count, 1)) }
	if n := stages[api.StageServer].Count; n != 2*samples {
		t.Fatalf("%d calls timed, want %d (stages %+v)", n, 2*samples, st.Sessions[0].Stages)
	}
	// A synchronisation that finds its stream idle (the reader was slow to
	// get to it, the kernel done) is answered by the reader: it has no
	// device stage. One that waited has the kernel's time in it.
	if d := stages[api.StageDevice]; d.Count > samples || d.Count > 0 && mean(d) < kernel/2 {
		t.Errorf("device stage: %d calls, mean %v; want at most %d, waiting at least half of the %v kernel", d.Count, mean(d), samples, kernel)
	}
	if q, d := stages[api.StageQueued], stages[api.StageDevice]; q.Count != d.Count {
		t.Errorf("queued stage: %d calls, device stage %d: every call that reached the shard has both", q.Count, d.Count)
	}
	if d := stages[api.StageDispatch]; d.Count != 2*samples {
		t.Errorf("dispatch stage: %d calls, want %d", d.Count, 2*samples)
	}
	if len(st.Stages) == 0 || st.Stages[len(st.Stages)-1].Times.Count < 2*samples {
		t.Errorf("the server's stages: %+v", st.Stages)
	}
}
