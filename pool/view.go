package pool

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func itoa(i int) string { return strconv.Itoa(i) }

// devState is what the view knows of one device's reservations.
type devState struct {
	rev   int64             // mod revision of its rev key; 0: never reserved
	holds map[string]uint64 // reservation id → bytes
	used  uint64            // the sum of holds
}

// devID names a device in the view.
type devID struct {
	server string
	index  int
}

// View is the pool as of a store revision, kept current by a watch:
// reservations are placed from it without reading the store each time, and
// the transaction that writes them checks that what it used has not moved.
type View struct {
	mu      sync.Mutex
	changed *sync.Cond
	rev     int64
	servers map[string]Server
	devs    map[devID]*devState
	ndevs   int // devices of the registered servers
	resvs   map[string]Reservation
	usage   map[string]int64 // usage key → mod revision
	quotas  map[string]Quota // quota key → quota
	err     error
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewView loads the pool's state and follows it until ctx ends or Close.
func NewView(ctx context.Context, cli *clientv3.Client) (*View, error) {
	v := &View{servers: map[string]Server{}, devs: map[devID]*devState{}, quotas: map[string]Quota{}, resvs: map[string]Reservation{}, usage: map[string]int64{}, done: make(chan struct{})}
	v.changed = sync.NewCond(&v.mu)
	resp, err := cli.Get(ctx, Prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	for _, kv := range resp.Kvs {
		v.apply(mvccpb.PUT, kv)
	}
	v.rev = resp.Header.Revision
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	v.cancel = cancel
	wch := cli.Watch(wctx, Prefix, clientv3.WithPrefix(), clientv3.WithRev(v.rev+1), clientv3.WithPrevKV())
	go v.follow(wch)
	return v, nil
}

// Close stops following the store.
func (v *View) Close() {
	v.cancel()
	<-v.done
}

func (v *View) follow(wch clientv3.WatchChan) {
	defer close(v.done)
	for wr := range wch {
		v.mu.Lock()
		if err := wr.Err(); err != nil {
			v.err = err
			v.changed.Broadcast()
			v.mu.Unlock()
			if wr.Canceled {
				return
			}
			continue
		}
		for _, ev := range wr.Events {
			v.apply(ev.Type, ev.Kv)
		}
		if wr.Header.Revision > v.rev {
			v.rev = wr.Header.Revision
		}
		v.err = nil
		v.changed.Broadcast()
		v.mu.Unlock()
	}
	v.mu.Lock()
	if v.err == nil {
		v.err = fmt.Errorf("%w: the watch ended", ErrUnavailable)
	}
	v.changed.Broadcast()
	v.mu.Unlock()
}

// apply folds one key's change in; v.mu is held (or v not yet shared).
func (v *View) apply(t mvccpb.Event_EventType, kv *mvccpb.KeyValue) {
	key := strings.TrimPrefix(string(kv.Key), Prefix)
	del := t == mvccpb.DELETE
	switch {
	case strings.HasPrefix(key, "servers/"):
		name := strings.TrimPrefix(key, "servers/")
		v.ndevs -= len(v.servers[name].Devices)
		delete(v.servers, name)
		if del {
			return
		}
		var s Server
		if json.Unmarshal(kv.Value, &s) == nil {
			v.servers[name] = s
			v.ndevs += len(s.Devices)
		}
	case strings.HasPrefix(key, "resv/"):
		id := strings.TrimPrefix(key, "resv/")
		if del {
			delete(v.resvs, id)
			return
		}
		var r Reservation
		if json.Unmarshal(kv.Value, &r) == nil {
			v.resvs[id] = r
		}
	case strings.HasPrefix(key, "quota/"):
		var q Quota
		if del || json.Unmarshal(kv.Value, &q) != nil {
			delete(v.quotas, string(kv.Key))
			return
		}
		v.quotas[string(kv.Key)] = q
	case strings.HasPrefix(key, "usage/"):
		if del {
			delete(v.usage, string(kv.Key))
			return
		}
		v.usage[string(kv.Key)] = kv.ModRevision
	case strings.HasPrefix(key, "dev/"):
		// dev/SERVER/INDEX/rev or dev/SERVER/INDEX/h/ID
		parts := strings.Split(strings.TrimPrefix(key, "dev/"), "/")
		if len(parts) < 3 {
			return
		}
		index, err := strconv.Atoi(parts[1])
		if err != nil {
			return
		}
		id := devID{parts[0], index}
		d := v.devs[id]
		if d == nil {
			d = &devState{holds: map[string]uint64{}}
			v.devs[id] = d
		}
		switch {
		case parts[2] == "rev" && len(parts) == 3:
			if !del {
				d.rev = kv.ModRevision
			}
		case parts[2] == "h" && len(parts) == 4:
			d.used -= d.holds[parts[3]]
			delete(d.holds, parts[3])
			if del {
				return
			}
			n, err := strconv.ParseUint(string(kv.Value), 10, 64)
			if err == nil {
				d.holds[parts[3]] = n
				d.used += n
			}
		}
	}
}

// waitFor blocks until the view has seen revision rev, or the watch
// failed, or ctx ended.
func (v *View) waitFor(ctx context.Context, rev int64) error {
	stop := context.AfterFunc(ctx, func() {
		v.mu.Lock()
		v.changed.Broadcast()
		v.mu.Unlock()
	})
	defer stop()
	v.mu.Lock()
	defer v.mu.Unlock()
	for v.rev < rev {
		if v.err != nil {
			return v.err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		v.changed.Wait()
	}
	return nil
}

// Servers returns the records of the named servers still in the pool, in
// name order. A broker answering a reservation needs the few servers it
// holds: a Snapshot copies the whole pool (every device's usage, every
// reservation) and was half of a reservation's CPU in the broker.
func (v *View) Servers(names ...string) []Server {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]Server, 0, len(names))
	for _, n := range names {
		if s, ok := v.servers[n]; ok {
			out = append(out, s)
		}
	}
	sortServers(out)
	return out
}

// Snapshot is a copy of the pool's state for list and health.
type Snapshot struct {
	Revision     int64
	Servers      []Server
	Used         map[string]uint64 // "server/index" → bytes held
	Reservations []Reservation
}

// Snapshot copies the view's state.
func (v *View) Snapshot() Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := Snapshot{Revision: v.rev, Used: map[string]uint64{}}
	for _, srv := range v.servers {
		s.Servers = append(s.Servers, srv)
	}
	for id, d := range v.devs {
		s.Used[id.server+"/"+itoa(id.index)] = d.used
	}
	for _, r := range v.resvs {
		s.Reservations = append(s.Reservations, r)
	}
	sortServers(s.Servers)
	sortReservations(s.Reservations)
	return s
}

// Lost returns the reservations holding a device of a server that has
// left the pool: the server died (its lease ran out) while they held it.
func (s Snapshot) Lost() []string {
	live := map[string]bool{}
	for _, srv := range s.Servers {
		live[srv.Name] = true
	}
	var lost []string
	for _, r := range s.Reservations {
		for _, h := range r.Holds {
			if !live[h.Server] {
				lost = append(lost, r.ID)
				break
			}
		}
	}
	return lost
}
