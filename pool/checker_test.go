package pool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// childEnv names the store a checker child process reserves from.
const childEnv = "GPUFABRIC_POOL_CHECKER_CHILD"

func TestMain(m *testing.M) {
	if url := os.Getenv(childEnv); url != "" {
		os.Exit(checkerChild(url))
	}
	os.Exit(m.Run())
}

// checkerChild is one client process of TestCheckerProcesses: it loops
// request and release under a lease it keeps alive, as `gpufabric run`
// does, printing a line a cycle, until killed or done.
func checkerChild(url string) int {
	ctx := context.Background()
	cli, err := Connect(ctx, StoreConfig{Endpoints: []string{url}})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer cli.Close()
	c, err := NewClient(ctx, cli, Identity{User: fmt.Sprintf("p%d", os.Getpid())})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer c.Close()
	l, err := cli.Grant(ctx, 1)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	ka, err := cli.KeepAlive(ctx, l.ID)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	go func() {
		for range ka {
		}
	}()
	shares := []float64{0.25, 0.5, 0.3, 1}
	for i := range 150 {
		r, err := c.Reserve(ctx, Request{N: 1 + i%2, Share: Share{Fraction: shares[rand.IntN(len(shares))]}, Lease: l.ID, SharedLease: true, Node: -1, Policy: Policy(i % 3)})
		switch {
		case errors.Is(err, ErrNoCapacity):
			fmt.Println("refused")
			continue
		case err != nil:
			fmt.Println("error", err)
			return 1
		}
		fmt.Println("granted")
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		if err := c.Release(ctx, r.ID); err != nil {
			fmt.Println("error", err)
			return 1
		}
	}
	return 0
}

// TestCheckerProcesses is the checker with client processes: eight run
// request/release cycles at once against six devices; three are killed
// (SIGKILL) while they hold reservations. Throughout, another goroutine
// reads every hold back from the store: no device is ever booked past its
// memory, and once the killed clients' leases run out nothing is held.
func TestCheckerProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs client processes")
	}
	e, cli := startEmbedded(t)
	for _, s := range []string{"a", "b", "c"} {
		fakeServer(t, cli, s, 2, gib, 2*time.Second)
	}
	stop := make(chan struct{})
	over := make(chan string, 1)
	var reads atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if err := checkHolds(cli); err != nil {
				select {
				case over <- err.Error():
				default:
				}
			}
			reads.Add(1)
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	var granted, refused atomic.Int64
	var children []*exec.Cmd
	var cwg sync.WaitGroup
	for range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+e.ClientURL)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, cmd)
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				switch line := sc.Text(); {
				case line == "granted":
					granted.Add(1)
				case line == "refused":
					refused.Add(1)
				case strings.HasPrefix(line, "error"):
					t.Errorf("client %d: %s", cmd.Process.Pid, line)
				}
			}
		}()
	}
	// Kill three once the pool is busy, holding what they hold.
	eventually(t, 30*time.Second, "the clients get going", func() bool { return granted.Load() >= 40 })
	for _, cmd := range children[:3] {
		_ = cmd.Process.Kill()
	}
	for _, cmd := range children {
		_ = cmd.Wait()
	}
	cwg.Wait()
	eventually(t, 15*time.Second, "nothing is held once the killed clients' leases run out", func() bool {
		resp, err := cli.Get(context.Background(), Prefix+"resv/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 0 && len(held(t, cli)) == 0
	})
	close(stop)
	wg.Wait()
	select {
	case msg := <-over:
		t.Fatal(msg)
	default:
	}
	t.Logf("%d granted, %d refused for want of room, 3 clients killed; %d read-backs of the store", granted.Load(), refused.Load(), reads.Load())
	if refused.Load() == 0 {
		t.Fatal("the pool was never full: the test checks nothing")
	}
}

// checkHolds reads every hold back in one read and fails a device booked
// past its memory.
func checkHolds(cli *clientv3.Client) error {
	resp, err := cli.Get(context.Background(), Prefix+"dev/", clientv3.WithPrefix())
	if err != nil {
		return nil // the store is busy or closing; the next read checks
	}
	sum := map[string]uint64{}
	for _, kv := range resp.Kvs {
		dev, _, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), Prefix+"dev/"), "/h/")
		if !ok {
			continue
		}
		var n uint64
		fmt.Sscan(string(kv.Value), &n)
		sum[dev] += n
	}
	for dev, n := range sum {
		if n > gib {
			return fmt.Errorf("device %s booked %d bytes of %d", dev, n, gib)
		}
	}
	return nil
}
