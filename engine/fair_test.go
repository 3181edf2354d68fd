package engine

import (
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
)

func TestFairQueueServesInProportionToShare(t *testing.T) {
	tests := []struct {
		name    string
		shares  []uint32 // millionths
		perFlow int
	}{
		{"equal", []uint32{250_000, 250_000}, 1000},
		{"one to three", []uint32{250_000, 750_000}, 3000},
		{"smallest and whole", []uint32{50_000, 1_000_000}, 3000},
		{"five tenants", []uint32{200_000, 200_000, 200_000, 200_000, 200_000}, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newFairQueue()
			ran := make([]int, len(tt.shares))
			for id, share := range tt.shares {
				for range tt.perFlow {
					q.push(uint64(id), quantumOf(share), task{work: funcWork(func() { ran[id]++ })})
				}
			}
			// Serve a while, while every flow still has work: counts must
			// follow the quanta.
			var batch []task
			total := 0
			for total < tt.perFlow/2 {
				batch = q.pop(batch[:0], 16)
				for _, t := range batch {
					t.run()
				}
				total += len(batch)
			}
			for i := range ran {
				for j := range ran {
					want := float64(quantumOf(tt.shares[i])) / float64(quantumOf(tt.shares[j]))
					got := float64(ran[i]) / float64(ran[j])
					if got < want*0.8 || got > want*1.25 {
						t.Errorf("flows %d:%d served %d:%d, want ratio %.2f", i, j, ran[i], ran[j], want)
					}
				}
			}
		})
	}
}

func TestFairQueueKeepsOrderWithinAFlow(t *testing.T) {
	q := newFairQueue()
	var got []int
	for i := range 100 {
		q.push(uint64(i%3), 1+i%3, task{work: funcWork(func() { got = append(got, i) })})
	}
	for {
		batch := q.pop(nil, 7)
		if len(batch) == 0 {
			break
		}
		for _, t := range batch {
			t.run()
		}
	}
	last := map[int]int{0: -1, 1: -1, 2: -1}
	for _, v := range got {
		if v <= last[v%3] {
			t.Fatalf("flow %d ran %d after %d", v%3, v, last[v%3])
		}
		last[v%3] = v
	}
	if len(got) != 100 {
		t.Fatalf("ran %d of 100 tasks", len(got))
	}
}

func TestShareBytes(t *testing.T) {
	const total = 16 << 30
	tests := []struct {
		millionths uint32
		bytes      uint64
		want       uint64
		ok         bool
	}{
		{250_000, 0, 4 << 30, true},
		{1_000_000, 0, total, true},
		{50_000, 0, total / 20, true},
		{49_000, 0, 0, false},
		{0, 0, 0, false},
		{1_000_001, 0, 0, false},
		{0, 8 << 30, 8 << 30, true},
		{0, 17 << 30, 0, false},
		{0, 1024, 0, false},
		{1, 1 << 30, 0, false},
		// A share given in bytes obeys the smallest share too.
		{0, total / 20, total / 20, true},
		{0, total/20 - 1<<20, 0, false},
		{0, 512 << 20, 0, false},
	}
	for _, tt := range tests {
		a := &api.Attach{ShareMillionths: tt.millionths, ShareBytes: tt.bytes}
		got, _, err := shareBytes(a, total, 1.0/20)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("share %d millionths / %d bytes: %d, %v; want %d, ok=%v", tt.millionths, tt.bytes, got, err, tt.want, tt.ok)
		}
	}
}

// TestFairQueueWeighsCost: two flows of equal share, one queuing large
// copies and one null launches, get equal cost served, not equal tasks.
func TestFairQueueWeighsCost(t *testing.T) {
	q := newFairQueue()
	heavy := costOf(16 << 20) // a 16 MiB copy: 257 units
	var costServed [2]int
	for range 200 {
		q.push(0, quantumOf(500_000), task{cost: heavy, work: funcWork(func() { costServed[0] += heavy })})
	}
	for range 200_000 {
		q.push(1, quantumOf(500_000), task{cost: 1, work: funcWork(func() { costServed[1]++ })})
	}
	var batch []task
	for costServed[0] < 50*heavy {
		batch = q.pop(batch[:0], 64)
		for _, t := range batch {
			t.run()
		}
	}
	if r := float64(costServed[1]) / float64(costServed[0]); r < 0.8 || r > 1.25 {
		t.Errorf("light flow served %d units to the heavy flow's %d: ratio %.2f, want about 1", costServed[1], costServed[0], r)
	}
}

// TestFairQueueBounded: a flow that never runs dry reuses its array
// instead of growing it.
func TestFairQueueBounded(t *testing.T) {
	q := newFairQueue()
	var batch []task
	for range 5 {
		q.push(1, 4, task{work: funcWork(func() {})})
	}
	for range 100_000 {
		q.push(1, 4, task{work: funcWork(func() {})})
		q.push(1, 4, task{work: funcWork(func() {})})
		batch = q.pop(batch[:0], 2) // five stay queued throughout
	}
	f := q.flows[1]
	if queued := len(f.tasks) - f.head; queued != 5 || q.queued.Load() != 5 {
		t.Fatalf("%d tasks in the flow, %d counted; want 5", queued, q.queued.Load())
	}
	if cap(f.tasks) > 64 {
		t.Fatalf("5 tasks queued in an array of %d", cap(f.tasks))
	}
}
