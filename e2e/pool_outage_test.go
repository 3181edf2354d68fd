package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/internal/servertest"
)

// storeProc is a `gpufabric pool` process: the whole store, on fixed
// ports and one data directory, so that it can be killed and started
// again as the same store.
type storeProc struct {
	dir, listen, peer string
	cmd               *exec.Cmd
	log               *servertest.Buffer
	done              chan struct{}
}

func startStoreProc(t *testing.T) *storeProc {
	t.Helper()
	s := &storeProc{dir: t.TempDir(), listen: freePort(t), peer: freePort(t)}
	s.start(t)
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGCONT) // a test that failed while it was stopped
		s.kill()
		if t.Failed() {
			t.Logf("store log:\n%s", s.log.String())
		}
	})
	return s
}

// freePort is a loopback address nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *storeProc) url() string { return "http://" + s.listen }

// start runs the store and waits until it serves.
func (s *storeProc) start(t *testing.T) {
	t.Helper()
	if s.log == nil {
		s.log = new(servertest.Buffer)
	}
	s.cmd = exec.Command(gpufabric, "pool", "--data-dir", s.dir, "--listen", s.listen, "--peer", s.peer)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	served := strings.Count(s.log.String(), "pool store serving")
	waitFor(t, time.Minute, "the store serves", func() bool {
		select {
		case <-s.done:
			t.Fatalf("the store exited before serving:\n%s", s.log.String())
		default:
		}
		return strings.Count(s.log.String(), "pool store serving") > served
	})
}

// kill ends the store at once, as a crash or a lost machine would.
func (s *storeProc) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// rounds follows the output of examples/c/rounds: the last round it
// reported, and everything after its rounds.
type rounds struct {
	mu   sync.Mutex
	last int
	rest strings.Builder
	done chan struct{}
}

// registered is the number of servers `list` shows, or -1 when it fails.
func (f *poolFixture) registered() int {
	out, err := f.try("list")
	if err != nil {
		return -1
	}
	return len(listedRE.FindAllString(out, -1))
}

// listedRE matches the line `list` gives a server's device.
var listedRE = regexp.MustCompile(`(?m)^s[01]\s+0\s`)

var roundRE = regexp.MustCompile(`^round (\d+)$`)

func followRounds(rd *bufio.Reader) *rounds {
	r := &rounds{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			line, err := rd.ReadString('\n')
			r.mu.Lock()
			if m := roundRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				r.last, _ = strconv.Atoi(m[1])
			} else {
				r.rest.WriteString(line)
			}
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *rounds) now() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// computes waits until the program has finished three more rounds, each
// checked by the program itself.
func (r *rounds) computes(t *testing.T, when string) {
	t.Helper()
	from := r.now()
	waitFor(t, time.Minute, "the program computes "+when, func() bool { return r.now() >= from+3 })
}

// TestPoolStoreOutage takes the whole store away while a program runs on
// a device of the pool: first killed and started again on its data, then
// stopped (SIGSTOP) and continued, as a hung machine would be. Through
// both the program computes on and finishes correct; a request meanwhile
// fails within a bound with a message that says the store is unreachable;
// once the store is back the servers are registered again, the program's
// reservation still counts (a request for more than the rest is refused),
// and at its exit its capacity is free.
func TestPoolStoreOutage(t *testing.T) {
	// The run's lease: a stopped store must come back within it, and the
	// stop lasts as long as a request takes to fail (5 s) and more.
	const runTTL = 12 * time.Second
	requireBuild(t, "rounds")
	store := startStoreProc(t)
	f := joinPool(t, store, 2, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd, stdin, rd, stderr := f.untilReady(ctx, t, "-n", "1", "-p", "0.5", "--pool-ttl", runTTL.String(), "--", example("rounds"), kernels)
	defer cmd.Process.Kill()
	prog := followRounds(rd)
	prog.computes(t, "before the outage")

	// A store started again on its data gives every lease a fresh TTL, so
	// it may stay away longer than every TTL: 14 s, past the run's 12 s,
	// by when the etcd client has given up renewing and backs off between
	// dials for seconds; the servers' registrations must not lapse. One
	// stopped runs the leases' clocks on, so it must come back within the
	// run's TTL for the reservation to outlive it; the servers' leases
	// (2 s) may run out then, and the servers register again. Once back,
	// both are watched for longer than the TTLs of what they hold.
	for _, outage := range []struct {
		name       string
		take, back func()
		away, hold time.Duration
		steady     bool
	}{
		{"killed and started again", store.kill, func() { store.start(t) }, runTTL + 2*time.Second, runTTL + time.Second, true},
		{"stopped and continued", func() { store.cmd.Process.Signal(syscall.SIGSTOP) }, func() { store.cmd.Process.Signal(syscall.SIGCONT) }, 0, 5 * time.Second, false},
	} {
		outage.take()
		taken := time.Now()
		prog.computes(t, "with the store "+outage.name)
		start := time.Now()
		out, err := f.try("request", "-n", "1", "-p", "0.1", "--hold", "1m")
		took := time.Since(start)
		if err == nil || !strings.Contains(out, "unreachable") {
			t.Fatalf("a request with the store %s: %v\n%s", outage.name, err, out)
		}
		// The client's dial and first read each wait up to 5 s.
		if took > 20*time.Second {
			t.Fatalf("a request with the store %s failed only after %v", outage.name, took)
		}
		t.Logf("store %s: a request failed after %v: %s", outage.name, took.Round(10*time.Millisecond), strings.TrimSpace(out))
		waitFor(t, time.Minute, "the store away long enough", func() bool { return time.Since(taken) > outage.away })
		prog.computes(t, "still, with the store "+outage.name)
		outage.back()
		back := time.Now()
		waitFor(t, time.Minute, "both servers registered again", func() bool { return f.registered() == 2 })
		// What a holder failed to renew after the store's return runs out
		// within its TTL: the servers' registrations (2 s) and the
		// program's reservation must stay for longer.
		for time.Since(back) < outage.hold {
			if n := f.registered(); n != 2 && outage.steady {
				t.Fatalf("%v after the store was %s: %d servers registered, want both\n%s", time.Since(back), outage.name, n, f.cli(t, "list"))
			}
			if n := f.held(t); n != 1 {
				t.Fatalf("%v after the store was %s: %d reservations listed, want the program's\n%s", time.Since(back), outage.name, n, f.cli(t, "list"))
			}
		}
		waitFor(t, time.Minute, "both servers registered", func() bool { return f.registered() == 2 })
		// Half of one device is the program's: two devices of 0.6 are not
		// there.
		if out, err := f.try("request", "-n", "2", "-p", "0.6", "--hold", "1m"); err == nil || !strings.Contains(out, "capacity") {
			t.Fatalf("after the store was %s, a request for more than is free: %v\n%s", outage.name, err, out)
		}
		prog.computes(t, "after the store was "+outage.name)
	}

	fmt.Fprintln(stdin, "stop")
	<-prog.done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("rounds: %v\n%s\nstderr:\n%s", err, prog.rest.String(), stderr.String())
	}
	if !regexp.MustCompile(`rounds: \d+ rounds of \d+ elements correct`).MatchString(prog.rest.String()) {
		t.Fatalf("rounds did not finish correct:\n%s\nstderr:\n%s", prog.rest.String(), stderr.String())
	}
	// A server whose lease ran out in the outage is said to have left;
	// it must be said to be back too.
	if left, back := strings.Count(stderr.String(), "left the pool"), strings.Count(stderr.String(), "is back in the pool"); left != back {
		t.Errorf("run said %d times that a server left the pool and %d times that one came back:\n%s", left, back, stderr.String())
	}
	t.Logf("program: %d rounds, each checked, through both outages; run's stderr:\n%s", prog.now(), stderr.String())
	waitFor(t, 20*time.Second, "the program's reservation ends at its exit", func() bool { return f.held(t) == 0 })
	id := strings.TrimSpace(f.cli(t, "request", "-n", "2", "-p", "1", "--hold", "1m"))
	f.cli(t, "release", id)
}
