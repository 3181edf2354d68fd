package interpose

// pendingTable holds the calls awaiting replies, by sequence number. A
// session mostly has a few calls outstanding, so a small direct-mapped
// array answers nearly every lookup without hashing; a map takes the calls
// whose slot is taken. Guarded by Session.mu.
type pendingTable struct {
	slot [pendingSlots]*pending
	more map[uint32]*pending
	n    int
}

const pendingSlots = 64

func (t *pendingTable) put(seq uint32, p *pending) {
	p.seq = seq
	t.n++
	if i := seq % pendingSlots; t.slot[i] == nil {
		t.slot[i] = p
		return
	}
	if t.more == nil {
		t.more = map[uint32]*pending{}
	}
	t.more[seq] = p
}

// take removes and returns the call seq, or nil when there is none.
func (t *pendingTable) take(seq uint32) *pending {
	i := seq % pendingSlots
	if p := t.slot[i]; p != nil && p.seq == seq {
		t.slot[i] = nil
		t.n--
		return p
	}
	if p, ok := t.more[seq]; ok {
		delete(t.more, seq)
		t.n--
		return p
	}
	return nil
}

// drain removes and returns every call.
func (t *pendingTable) drain() []*pending {
	all := make([]*pending, 0, t.n)
	for i, p := range t.slot {
		if p != nil {
			all = append(all, p)
			t.slot[i] = nil
		}
	}
	for _, p := range t.more {
		all = append(all, p)
	}
	t.more = nil
	t.n = 0
	return all
}
