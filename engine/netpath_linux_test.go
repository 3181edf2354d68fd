//go:build linux

package engine_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/engine/probe"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// A test network: the server's end of a veth pair in this network
// namespace, the client's in a namespace of the test's own, on a private
// /30 that exists only between the two.
const (
	serverIP = "10.213.77.1"
	clientIP = "10.213.77.2"
)

// testPath makes the namespace and the veth pair, and removes them at the
// end of the test. It skips where the test may not.
func testPath(t *testing.T) (client netns.NsHandle, serverLink netlink.Link) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: network namespaces need root")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Skipf("skipping: no network namespace to return to: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New() // moves this thread into it
	if err != nil {
		t.Skipf("skipping: cannot make a network namespace: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	name := "gfv" + strconv.Itoa(os.Getpid()%100000)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name + "s"}, PeerName: name + "c"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Skipf("skipping: cannot make a veth pair: %v", err)
	}
	t.Cleanup(func() { netlink.LinkDel(veth) })
	peer, err := netlink.LinkByName(name + "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsFd(peer, int(ns)); err != nil {
		t.Fatal(err)
	}
	in, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	addr := func(h *netlink.Handle, link netlink.Link, ip string) {
		a, _ := netlink.ParseAddr(ip + "/30")
		if err := h.AddrAdd(link, a); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(link); err != nil {
			t.Fatal(err)
		}
	}
	host, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	serverLink, err = netlink.LinkByName(name + "s")
	if err != nil {
		t.Fatal(err)
	}
	addr(host, serverLink, serverIP)
	if peer, err = in.LinkByName(name + "c"); err != nil {
		t.Fatal(err)
	}
	addr(in, peer, clientIP)
	return ns, serverLink
}

// dialIn dials addr from namespace ns: the socket is made on a thread
// that is in it, and stays there.
func dialIn(t *testing.T, ns netns.NsHandle, addr string) transport.Conn {
	t.Helper()
	type result struct {
		c   transport.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // the thread dies with the goroutine, in ns
		if err := netns.Set(ns); err != nil {
			ch <- result{nil, err}
			return
		}
		c, err := tcp.Dial(context.Background(), addr, transport.Options{})
		ch <- result{c, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

// TestNetworkDelayIsTheNetworks: a queue on the path between client and
// server (a TBF qdisc filled by a bulk flow) adds to the client's round
// trip; the breakdown must put the added time outside the server, in the
// connection's smoothed RTT as the kernel measured it, within 20 %.
func TestNetworkDelayIsTheNetworks(t *testing.T) {
	ns, link := testPath(t)
	p, err := probe.Open(probe.Options{PID: os.Getpid()})
	if err != nil {
		t.Skipf("skipping: eBPF probes cannot load here (%v)", err)
	}
	defer p.Close()
	dev, err := host.New(host.Config{MemorySize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := engine.NewServer(engine.Config{Probes: p, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, []backend.Device{dev})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l, err := tcp.Listen(serverIP+":0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	_, port, _ := net.SplitHostPort(l.Addr())
	n, _ := strconv.Atoi(port)
	p.WatchPort(n)

	s, err := interpose.Open(context.Background(), dialIn(t, ns, l.Addr()), interpose.Options{Client: "over a slow path"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	measure := func(calls int) (rtt, server, srtt time.Duration) {
		before := srv.Status()
		var total time.Duration
		for range calls {
			start := time.Now()
			if err := s.Ping(); err != nil {
				t.Fatal(err)
			}
			total += time.Since(start)
		}
		ss := srv.Status().Sessions[0]
		var was api.Histogram
		for _, b := range before.Sessions[0].Stages {
			if b.Stage == api.StageServer {
				was = b.Times
			}
		}
		for _, st := range ss.Stages {
			if st.Stage == api.StageServer {
				server = st.Times.Sub(was).Mean()
			}
		}
		// The kernel's smoothed RTT at each segment of the window.
		if now := ss.TCP; now != nil {
			h := now.SRTT
			if was := before.Sessions[0].TCP; was != nil {
				h = h.Sub(was.SRTT)
			}
			srtt = h.Mean()
		}
		return total / time.Duration(calls), server, srtt
	}
	rtt0, server0, _ := measure(640) // one call in 64 is sampled

	// 4 Mbit/s with room for 16 KiB queued: a flow that fills it makes
	// every packet behind it wait about 32 ms.
	// tc computes the bucket's size in the kernel's ticks, as netlink's
	// Tbf would have us do by hand.
	ifname := link.Attrs().Name
	if out, err := exec.Command("tc", "qdisc", "add", "dev", ifname, "root", "tbf", "rate", "4mbit", "burst", "1600", "limit", "16384").CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot add a TBF qdisc with tc: %v: %s", err, out)
	}
	defer exec.Command("tc", "qdisc", "del", "dev", ifname, "root").Run()
	// The bulk flow: the server's side writes to a sink in the namespace.
	sinkL := make(chan net.Listener, 1)
	go func() {
		runtime.LockOSThread()
		netns.Set(ns)
		l, err := net.Listen("tcp", clientIP+":0")
		if err != nil {
			sinkL <- nil
			return
		}
		sinkL <- l
		if c, err := l.Accept(); err == nil {
			io.Copy(io.Discard, c)
		}
	}()
	sl := <-sinkL
	if sl == nil {
		t.Fatal("no sink")
	}
	defer sl.Close()
	bulk, err := net.Dial("tcp", sl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer bulk.Close()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := bulk.Write(buf); err != nil {
				return
			}
		}
	}()
	rtt1, server1, srtt1 := measure(192)
	added := rtt1 - rtt0
	t.Logf("round trip %v -> %v; in the server %v -> %v; the connection's smoothed RTT %v", rtt0, rtt1, server0, server1, srtt1)
	if added < 5*time.Millisecond {
		t.Fatalf("the queue added only %v to the round trip; the test's path did not slow down", added)
	}
	if server1-server0 > added/5 {
		t.Errorf("the server's stages took %v of the %v added", server1-server0, added)
	}
	outside := rtt1 - server1
	if d := srtt1 - outside; d > outside/5 || -d > outside/5 {
		t.Errorf("outside the server %v, the kernel's smoothed RTT %v: more than 20%% apart", outside, srtt1)
	}
}
