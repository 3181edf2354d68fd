package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestSlotsRace starts many servers at once, each claiming a slot from
// its own client: every one gets a slot, no two the same, and the store
// says the same.
func TestSlotsRace(t *testing.T) {
	e, _ := startEmbedded(t)
	const servers = 24
	const maxSlot = 32 // few slots, so that the claims collide
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]SlotClaim, servers)
	errs := make([]error, servers)
	start := make(chan struct{})
	for i := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli, err := Connect(ctx, StoreConfig{Endpoints: []string{e.ClientURL}})
			if err != nil {
				errs[i] = err
				return
			}
			defer cli.Close()
			<-start
			got[i], errs[i] = ClaimSlot(ctx, cli, fmt.Sprintf("s%d", i), -1, maxSlot)
		}()
	}
	close(start)
	wg.Wait()
	cli, err := Connect(ctx, StoreConfig{Endpoints: []string{e.ClientURL}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	owners, _, err := readSlots(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]string{}
	for i, c := range got {
		name := fmt.Sprintf("s%d", i)
		if errs[i] != nil {
			t.Fatalf("%s: %v", name, errs[i])
		}
		if c.Slot < 1 || c.Slot > maxSlot || c.From != "" {
			t.Errorf("%s: %+v, want a free slot in 1..%d", name, c, maxSlot)
		}
		if other, dup := seen[c.Slot]; dup {
			t.Errorf("slot %d given to %s and %s", c.Slot, other, name)
		}
		seen[c.Slot] = name
		if owners[c.Slot] != name {
			t.Errorf("the store says slot %d is %q's, %s was told it is its", c.Slot, owners[c.Slot], name)
		}
	}
	if len(owners) != servers {
		t.Errorf("%d slots held in the store, want %d: %v", len(owners), servers, owners)
	}
}

// TestSlotKeptAcrossRestarts: a server that claims again, registered or
// not, gets the slot it had.
func TestSlotKeptAcrossRestarts(t *testing.T) {
	cli := startStore(t)
	ctx := context.Background()
	first, err := ClaimSlot(ctx, cli, "a", -1, 255)
	if err != nil {
		t.Fatal(err)
	}
	a := slotServer(t, cli, "a", first.Slot)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := ClaimSlot(ctx, cli, fmt.Sprintf("other-%d", first.Slot), -1, 255); err != nil {
			t.Fatal(err)
		}
		again, err := ClaimSlot(ctx, cli, "a", -1, 255)
		if err != nil || again.Slot != first.Slot {
			t.Fatalf("a claims again: %+v, %v; want slot %d", again, err, first.Slot)
		}
	}
	slotServer(t, cli, "a", first.Slot)
}

// TestSlotReclaim fills every slot: a slot whose owner is not registered
// is taken when none is free, one of a registered server never is, and
// the server whose slot was taken cannot register with it.
func TestSlotReclaim(t *testing.T) {
	cli := startStore(t)
	ctx := context.Background()
	const maxSlot = 3
	claims := map[string]int{}
	for _, name := range []string{"a", "b", "c"} {
		c, err := ClaimSlot(ctx, cli, name, -1, maxSlot)
		if err != nil {
			t.Fatal(err)
		}
		claims[name] = c.Slot
	}
	slotServer(t, cli, "a", claims["a"])
	slotServer(t, cli, "c", claims["c"])
	// b claimed but never registered (or left): d takes its slot.
	d, err := ClaimSlot(ctx, cli, "d", -1, maxSlot)
	if err != nil || d.Slot != claims["b"] || d.From != "b" {
		t.Fatalf("d with every slot held: %+v, %v; want b's slot %d", d, err, claims["b"])
	}
	slotServer(t, cli, "d", d.Slot)
	if c, err := ClaimSlot(ctx, cli, "e", -1, maxSlot); !errors.Is(err, ErrNoSlot) {
		t.Fatalf("e with every slot's owner registered: %+v, %v; want ErrNoSlot", c, err)
	}
	// b comes back with the slot it was given: refused, whatever it does.
	info := Server{Name: "b", Addr: "127.0.0.1:1", Slot: claims["b"], Devices: []Device{{Index: 0, Memory: gib, Health: "ok"}}}
	if a, err := Join(ctx, cli, info, time.Second, quiet); !errors.Is(err, ErrSlotLost) || !strings.Contains(err.Error(), "server d's") {
		if a != nil {
			a.Close()
		}
		t.Fatalf("b registers with the slot d took: %v; want ErrSlotLost naming d", err)
	}
}

// TestSlotForced: a slot asked for is given when free or its owner is
// not registered, refused when a registered server owns it; the server
// asking gives up the slot it had.
func TestSlotForced(t *testing.T) {
	cli := startStore(t)
	ctx := context.Background()
	a, err := ClaimSlot(ctx, cli, "a", 7, 255)
	if err != nil || a.Slot != 7 {
		t.Fatalf("a asks for free slot 7: %+v, %v", a, err)
	}
	slotServer(t, cli, "a", 7)
	if c, err := ClaimSlot(ctx, cli, "b", 7, 255); !errors.Is(err, ErrSlotTaken) || !strings.Contains(err.Error(), "server a's") {
		t.Fatalf("b asks for a's slot 7 while a is in the pool: %+v, %v; want ErrSlotTaken naming a", c, err)
	}
	b, err := ClaimSlot(ctx, cli, "b", -1, 255)
	if err != nil {
		t.Fatal(err)
	}
	// b (not registered) is given slot 9 on demand: its old slot is freed.
	if c, err := ClaimSlot(ctx, cli, "b", 9, 255); err != nil || c.Slot != 9 {
		t.Fatalf("b asks for slot 9: %+v, %v", c, err)
	}
	owners, _, err := readSlots(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	if b.Slot != 9 && owners[b.Slot] != "" {
		t.Errorf("b's old slot %d still held by %q", b.Slot, owners[b.Slot])
	}
	// An unregistered owner's slot is taken on demand.
	if c, err := ClaimSlot(ctx, cli, "c", 9, 255); err != nil || c.Slot != 9 || c.From != "b" {
		t.Fatalf("c asks for slot 9 of unregistered b: %+v, %v", c, err)
	}
	for _, bad := range []int{0, 256} {
		if _, err := ClaimSlot(ctx, cli, "d", bad, 255); err == nil {
			t.Errorf("slot %d given", bad)
		}
	}
}

// TestSlotLostInPartition cuts a server off past its TTL while the pool
// has no free slot: another server takes its slot. When the network
// returns, the first must not rejoin (its devices would hand out the
// other's addresses): its agent stops with ErrSlotLost.
func TestSlotLostInPartition(t *testing.T) {
	cli := startStore(t)
	p := newCutProxy(t, strings.TrimPrefix(cli.Endpoints()[0], "http://"))
	scli, err := Connect(context.Background(), StoreConfig{Endpoints: []string{"http://" + p.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { scli.Close() })
	ctx := context.Background()
	c, err := ClaimSlot(ctx, scli, "a", -1, 1)
	if err != nil {
		t.Fatal(err)
	}
	a := slotServer(t, scli, "a", c.Slot)
	if _, err := ClaimSlot(ctx, cli, "b", -1, 1); !errors.Is(err, ErrNoSlot) {
		t.Fatalf("b while a is in the pool: %v; want ErrNoSlot", err)
	}
	p.cut()
	var b SlotClaim
	eventually(t, 15*time.Second, "b takes the slot of a, cut off", func() bool {
		b, err = ClaimSlot(ctx, cli, "b", -1, 1)
		return err == nil
	})
	if b.Slot != c.Slot || b.From != "a" {
		t.Fatalf("b: %+v; want a's slot %d", b, c.Slot)
	}
	slotServer(t, cli, "b", b.Slot)
	p.restore()
	select {
	case <-a.Out():
	case <-time.After(30 * time.Second):
		t.Fatal("a's agent still trying to join 30 s after the network returned")
	}
	if !errors.Is(a.Err(), ErrSlotLost) {
		t.Fatalf("a left the pool for good with %v; want ErrSlotLost", a.Err())
	}
	owners, registered, err := readSlots(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	if registered["a"] || owners[c.Slot] != "b" {
		t.Fatalf("after a's return: slots %v, registered %v", owners, registered)
	}
}

// slotServer registers a one-device server that owns slot, with a 1 s
// lease; it leaves at the test's end.
func slotServer(t *testing.T, cli *clientv3.Client, name string, slot int) *Agent {
	t.Helper()
	info := Server{Name: name, Addr: "127.0.0.1:1", Slot: slot, Devices: []Device{{Index: 0, Memory: gib, Health: "ok"}}}
	a, err := Join(context.Background(), cli, info, time.Second, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// TestSlotNoMoveWhileRegistered: a server in the pool keeps its slot,
// whatever it asks for, until it has left.
func TestSlotNoMoveWhileRegistered(t *testing.T) {
	cli := startStore(t)
	ctx := context.Background()
	c, err := ClaimSlot(ctx, cli, "a", -1, 255)
	if err != nil {
		t.Fatal(err)
	}
	a := slotServer(t, cli, "a", c.Slot)
	want := c.Slot%255 + 1
	if got, err := ClaimSlot(ctx, cli, "a", want, 255); !errors.Is(err, ErrSlotTaken) {
		t.Fatalf("registered a asks to move to slot %d: %+v, %v; want ErrSlotTaken", want, got, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := ClaimSlot(ctx, cli, "a", want, 255); err != nil || got.Slot != want {
		t.Fatalf("a, gone, asks for slot %d: %+v, %v", want, got, err)
	}
}
