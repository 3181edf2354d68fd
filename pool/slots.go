package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Address slots. A program whose devices are on several servers tells
// whose memory an address is by its range, so the servers of one pool
// must hand out disjoint device addresses. The host backend moves each
// server's addresses to a slot of its own (host.Config.Slot); the pool
// assigns the slots, so that no two servers share one by chance.
//
// slots/N holds the name of the server that owns slot N. It lives under
// no lease: a server that restarts finds its slot again, and one whose
// lease ran out while the store was away still owns it when it rejoins.
// A slot is only taken from its owner while the owner is not registered,
// and only when no slot is free (or the operator forces that slot); the
// owner's registration compares slots/N with its name in the same
// transaction, so an owner whose slot was taken cannot register again
// with devices that hand out the new owner's addresses.

var (
	// ErrSlotTaken: the address slot asked for belongs to a server that
	// is in the pool.
	ErrSlotTaken = errors.New("address slot held by a server in the pool")
	// ErrNoSlot: every address slot belongs to a server in the pool.
	ErrNoSlot = errors.New("no free address slot")
	// ErrSlotLost: the server's address slot was given to another server
	// while this one was out of the pool; its devices hand out that
	// slot's addresses, so it must not rejoin.
	ErrSlotLost = errors.New("address slot given to another server")
)

func slotKey(n int) string { return Prefix + "slots/" + strconv.Itoa(n) }

// SlotClaim is the address slot a server got.
type SlotClaim struct {
	Slot int
	// From is the server it was taken from (no longer registered), or ""
	// when the slot was free or this server's already.
	From string
}

// ClaimSlot gives the server named name an address slot in 1..maxSlot,
// in one transaction per attempt: the slot it owns already, else want
// when want > 0, else a free one, else one whose owner is no longer
// registered. Slot 0 is for servers outside a pool, whose devices no
// program combines with a pool's. A wanted slot that a registered server
// owns is refused with ErrSlotTaken.
func ClaimSlot(ctx context.Context, cli *clientv3.Client, name string, want, maxSlot int) (SlotClaim, error) {
	if want == 0 || want > maxSlot {
		return SlotClaim{}, fmt.Errorf("address slot %d: in a pool give 1 to %d, or none and the pool assigns one (slot 0 is for servers outside a pool)", want, maxSlot)
	}
	for {
		owners, registered, err := readSlots(ctx, cli)
		if err != nil {
			return SlotClaim{}, err
		}
		mine := 0
		for n, owner := range owners {
			if owner == name && (mine == 0 || n < mine) {
				mine = n
			}
		}
		if want < 0 && mine > 0 {
			return SlotClaim{Slot: mine}, nil
		}
		n, from := want, ""
		switch {
		case want > 0:
			owner, held := owners[want]
			if held && owner == name {
				return SlotClaim{Slot: want}, nil
			}
			if mine > 0 && registered[name] {
				// Its devices hand out slot mine's addresses until it leaves.
				return SlotClaim{}, fmt.Errorf("%w: server %s is in the pool with slot %d; it moves to slot %d only once it has left", ErrSlotTaken, name, mine, want)
			}
			if held && registered[owner] {
				return SlotClaim{}, fmt.Errorf("%w: slot %d is server %s's, which is in the pool; give another --address-slot, or none and the pool assigns one", ErrSlotTaken, want, owner)
			}
			from = owner
		default:
			var free, stale []int
			for s := 1; s <= maxSlot; s++ {
				owner, held := owners[s]
				switch {
				case !held:
					free = append(free, s)
				case !registered[owner]:
					stale = append(stale, s)
				}
			}
			// At random, so that servers starting at once seldom race for
			// one slot.
			switch {
			case len(free) > 0:
				n = free[rand.IntN(len(free))]
			case len(stale) > 0:
				n = stale[rand.IntN(len(stale))]
				from = owners[n]
			default:
				return SlotClaim{}, fmt.Errorf("%w: all %d belong to servers in the pool", ErrNoSlot, maxSlot)
			}
		}
		ok, err := takeSlot(ctx, cli, name, n, from, mine)
		if err != nil {
			return SlotClaim{}, err
		}
		if ok {
			return SlotClaim{Slot: n, From: from}, nil
		}
		// Another server claimed or registered meanwhile: read again.
		if err := ctx.Err(); err != nil {
			return SlotClaim{}, fmt.Errorf("claiming an address slot: %w", storeErr(err))
		}
	}
}

// readSlots reads the slots' owners and the registered servers at one
// revision.
func readSlots(ctx context.Context, cli *clientv3.Client) (map[int]string, map[string]bool, error) {
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpGet(Prefix+"slots/", clientv3.WithPrefix()),
		clientv3.OpGet(Prefix+"servers/", clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return nil, nil, storeErr(err)
	}
	owners := map[int]string{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		n, err := strconv.Atoi(strings.TrimPrefix(string(kv.Key), Prefix+"slots/"))
		if err != nil {
			continue // not a slot of ours
		}
		owners[n] = string(kv.Value)
	}
	registered := map[string]bool{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		registered[strings.TrimPrefix(string(kv.Key), Prefix+"servers/")] = true
	}
	return owners, registered, nil
}

// takeSlot writes slot n to name if it is still free (from == "") or
// still from's while from is not registered; it gives up the slot old
// that name owned before (0: none), so a server owns one slot.
func takeSlot(ctx context.Context, cli *clientv3.Client, name string, n int, from string, old int) (bool, error) {
	cmp := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(slotKey(n)), "=", 0)}
	if from != "" {
		cmp = []clientv3.Cmp{
			clientv3.Compare(clientv3.Value(slotKey(n)), "=", from),
			clientv3.Compare(clientv3.CreateRevision(serverKey(from)), "=", 0),
		}
	}
	ops := []clientv3.Op{clientv3.OpPut(slotKey(n), name)}
	if old > 0 && old != n {
		cmp = append(cmp, clientv3.Compare(clientv3.Value(slotKey(old)), "=", name))
		ops = append(ops, clientv3.OpDelete(slotKey(old)))
	}
	resp, err := cli.Txn(ctx).If(cmp...).Then(ops...).Commit()
	if err != nil {
		return false, storeErr(err)
	}
	return resp.Succeeded, nil
}
