package api

import "testing"

func init() {
	samples = append(samples,
		&GraphCreate{Graph: 9, Ordinal: 0, Nodes: []GraphNode{
			{Kind: NodeLaunch, Function: 2, Grid: [3]uint32{4, 1, 1}, Block: [3]uint32{128, 1, 1}, SharedMem: 64, Params: []byte{1, 2, 3, 4}},
			{Kind: NodeMemset, Dst: 0x2000, Value: 7, ElemSize: 4, Count: 3},
			{Kind: NodeCopy, Dst: 0x3000, Src: 0x2000, Count: 12},
			{Kind: NodeWrite, Dst: 0x2000, Value64: 1 << 40, ElemSize: 8},
			{Kind: NodeWaitValue, Dst: 0x2000, Value64: 5, ElemSize: 4, Flags: WaitEQ},
		}},
		&GraphLaunch{Graph: 9, Stream: 5},
		&GraphDestroy{Graph: 9},
		&StreamWaitValue{Stream: 5, Ptr: 0x2000, Value: 3, Size: 4, Flags: WaitGEQ},
		&HostFunc{Stream: 5, Marker: 77},
		&HostFuncDone{Marker: 77},
		&Link{Ordinal: 1, Inputs: []LinkInput{{Type: LinkPTX, Name: "a.ptx", Size: 100}, {Type: LinkCubin, Name: "b", Size: 7}}},
		&FuncAttributes{Function: 3},
		&FuncAttributeValues{Values: []int32{1024, 0, 0, 0, 40, 80, 80, -1}},
		&StreamWriteValue{Stream: 5, Ptr: 0x2000, Value: 1 << 33, Size: 8},
	)
}

func TestGraphCreateRefusesUnknownNodeKind(t *testing.T) {
	g := &GraphCreate{Graph: 1, Nodes: []GraphNode{{Kind: NodeCopy, Count: 1}}}
	body := AppendRequest(nil, 1, 0, g)
	// The kind byte of the first node follows the header (8 bytes), the
	// graph, ordinal and count (12).
	body[8+12] = 99
	h, fields, err := ReadHeader(body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewDecoder(nil).Request(h, fields); err == nil {
		t.Fatal("a node of an unknown kind decoded")
	}
}

func TestWaitSatisfied(t *testing.T) {
	for _, c := range []struct {
		cmp       uint32
		v, value  uint64
		size      int
		satisfied bool
	}{
		{WaitGEQ, 5, 5, 4, true},
		{WaitGEQ, 4, 5, 4, false},
		{WaitGEQ, 1, 0xffff_fff0, 4, true}, // wrapped past: later
		{WaitGEQ, 1 << 40, 1<<40 + 1, 8, false},
		{WaitEQ, 1<<32 | 7, 7, 4, true}, // a 32-bit wait sees the low word
		{WaitEQ, 1<<32 | 7, 7, 8, false},
		{WaitAND, 6, 2, 4, true},
		{WaitAND, 4, 2, 4, false},
		{WaitNOR, 0, 0xffff_fffe, 4, true},
		{WaitNOR, 1, 0xffff_fffe, 4, false},
		{7, 1, 1, 4, false},
	} {
		if got := WaitSatisfied(c.cmp, c.v, c.value, c.size); got != c.satisfied {
			t.Errorf("WaitSatisfied(%d, %#x, %#x, %d) = %v", c.cmp, c.v, c.value, c.size, got)
		}
	}
}

func TestGraphCreateBoundsItsNodes(t *testing.T) {
	for _, c := range []struct {
		nodes int
		ok    bool
	}{{MaxGraphNodes, true}, {MaxGraphNodes + 1, false}} {
		g := &GraphCreate{Graph: 1, Nodes: make([]GraphNode, c.nodes)}
		for i := range g.Nodes {
			g.Nodes[i] = GraphNode{Kind: NodeCopy, Count: 4}
		}
		h, fields, err := ReadHeader(AppendRequest(nil, 1, 0, g))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewDecoder(nil).Request(h, fields); (err == nil) != c.ok {
			t.Errorf("a graph of %d nodes: %v", c.nodes, err)
		}
	}
}
