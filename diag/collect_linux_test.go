package diag

import (
	"bytes"
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestCollectHost(t *testing.T) {
	r, err := CollectHost()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range r.Warnings {
		t.Logf("warning: %s", w)
	}
	var lo *NIC
	for i := range r.NICs {
		if r.NICs[i].Name == "lo" {
			lo = &r.NICs[i]
		}
	}
	if lo == nil {
		t.Fatalf("no loopback interface among %+v", r.NICs)
	}
	if lo.MTU <= 0 || lo.Type != "device" {
		t.Errorf("lo = %+v", *lo)
	}
	if r.Hostname == "" || r.Kernel == "" || len(r.BootID) != 36 || len(r.NUMANodes) == 0 {
		t.Errorf("host identity incomplete: %q %q %q %+v", r.Hostname, r.Kernel, r.BootID, r.NUMANodes)
	}

	var table, js bytes.Buffer
	if err := WriteTable(&table, Report{Host: r}); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, Report{Host: r}); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	if !strings.Contains(table.String(), "\n  lo ") {
		t.Errorf("table has no row for lo:\n%s", table.String())
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not parse: %v\n%s", err, js.String())
	}
	if len(back.Host.NICs) != len(r.NICs) {
		t.Errorf("JSON holds %d NICs, the report %d", len(back.Host.NICs), len(r.NICs))
	}
	if len(r.RDMADevices) == 0 && !strings.Contains(table.String(), "RDMA DEVICES\n  none\n") {
		t.Errorf("no RDMA devices, and the table does not say none:\n%s", table.String())
	}
}

// TestNICsInNetns creates a veth pair in a network namespace of its own,
// so that the host's links are untouched, and collects that namespace's
// links through a netlink handle bound to it. Closing the namespace (no
// process is in it) destroys it with the pair.
func TestNICsInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating a network namespace needs root")
	}
	ns := newNetns(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in the new namespace: %v", err)
	}
	t.Cleanup(h.Close)

	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "gfdiag0", MTU: 1400}, PeerName: "gfdiag1", PeerMTU: 1300}
	if err := h.LinkAdd(veth); err != nil {
		t.Skipf("cannot create a veth pair (no veth support?): %v", err)
	}
	t.Cleanup(func() { _ = h.LinkDel(veth) })
	if err := h.LinkSetUp(veth); err != nil {
		t.Fatal(err)
	}

	nics, warnings := collectNICs(h, nil, "/nonexistent")
	if len(warnings) > 0 {
		t.Errorf("warnings: %q", warnings)
	}
	want := map[string]struct {
		mtu  int
		kind string
	}{"lo": {65536, "device"}, "gfdiag0": {1400, "veth"}, "gfdiag1": {1300, "veth"}}
	if len(nics) != len(want) {
		t.Errorf("got %d links, want %d: %+v", len(nics), len(want), nics)
	}
	for _, n := range nics {
		w, ok := want[n.Name]
		if !ok {
			t.Errorf("unexpected link %+v", n)
			continue
		}
		if n.MTU != w.mtu || n.Type != w.kind || n.NUMANode != -1 || (n.Type == "veth" && n.MAC == "") {
			t.Errorf("%s = %+v, want MTU %d, type %s, no NUMA node, a MAC on a veth", n.Name, n, w.mtu, w.kind)
		}
	}
}

// newNetns returns a handle to a new network namespace, closed when the
// test ends. Creating one moves the calling thread into it, so the thread
// is locked while that is undone; if it cannot be undone the thread stays
// locked and exits with the test's goroutine rather than serve others.
func newNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Skipf("cannot read this thread's network namespace: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		t.Skipf("cannot create a network namespace: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		ns.Close()
		t.Fatalf("cannot return to the original network namespace: %v", err)
	}
	runtime.UnlockOSThread()
	t.Cleanup(func() { ns.Close() })
	return ns
}
