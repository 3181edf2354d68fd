//go:build linux

package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Probes is a set of loaded probes. Its methods are safe for concurrent
// use. A nil *Probes is a server without probes: Track, Untrack, Process
// and WatchPort do nothing, Snapshot fails, Close succeeds.
type Probes struct {
	mu       sync.Mutex
	maps     []*ebpf.Map // every map, to close
	tracked  *ebpf.Map
	config   *ebpf.Map
	hists    *ebpf.Map
	ports    *ebpf.Map
	conns    *ebpf.Map
	progs    []*ebpf.Program
	links    []link.Link
	disabled map[string]error
	roles    map[string]uint32
	names    []string // role id -> name
	tids     map[int]string
	pid      int    // given to Process
	gen      uint64 // of the config last written
	ncpu     int
	closed   bool
}

// object is one compiled BPF object and the programs in it.
type object struct {
	name  string
	load  func() (*ebpf.CollectionSpec, error)
	progs []string
}

var objects = []object{
	{"sched", loadSched, []string{"sched_wakeup", "sched_wakeup_new", "sched_switch"}},
	{"syscalls", loadSyscalls, []string{"sys_enter", "sys_exit"}},
	{"tcp", loadTcp, []string{"tcp_probe", "tcp_retransmit_skb"}},
}

// sharedMaps are created once and handed to every object that declares
// them (bpf/common.h).
var sharedMaps = []string{"tracked", "config", "hists", "threads"}

var errNil = errors.New("probe: no probes (Open failed or was not called)")

// errNeedsPrivilege wraps a permission error from the kernel.
func errNeedsPrivilege(err error) error {
	return fmt.Errorf("probe: loading eBPF needs CAP_BPF and CAP_PERFMON (or root), and a kernel not locked down against BPF: %w", err)
}

func isPermission(err error) bool {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return false // the verifier's rejection comes as EACCES
	}
	// cilium/ebpf v0.22 has no ErrNotPermitted: the kernel says EPERM.
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, os.ErrPermission)
}

// Open loads and attaches the probes. It fails only when none can load,
// with an error that says what is missing; a program that fails on this
// kernel is left out and named in Disabled.
func Open(opts Options) (*Probes, error) {
	// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK. Raising it
	// needs privileges too; without them the map creation below says so.
	memlockErr := rlimit.RemoveMemlock()
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("probe: counting CPUs: %w", err)
	}
	p := &Probes{
		disabled: make(map[string]error),
		roles:    make(map[string]uint32),
		tids:     make(map[int]string),
		ncpu:     ncpu,
	}
	// tp_btf programs need the kernel's BTF; without it they are disabled
	// with this reason, and the raw tracepoints still load.
	_, btfErr := btf.LoadKernelSpec()
	if btfErr != nil {
		btfErr = fmt.Errorf("probe: the kernel has no BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF): %w", btfErr)
	}

	shared := make(map[string]*ebpf.Map)
	for _, obj := range objects {
		spec, err := obj.load()
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("probe: parsing the %s object: %w", obj.name, err)
		}
		// The object's maps: shared ones once, its own ones here.
		objMaps := make(map[string]*ebpf.Map, len(spec.Maps))
		for name, ms := range spec.Maps {
			if m, ok := shared[name]; ok {
				objMaps[name] = m
				continue
			}
			m, err := ebpf.NewMap(ms)
			if err != nil {
				p.Close()
				if memlockErr != nil {
					err = fmt.Errorf("%w (and raising RLIMIT_MEMLOCK: %v)", err, memlockErr)
				}
				if isPermission(err) {
					return nil, errNeedsPrivilege(err)
				}
				return nil, fmt.Errorf("probe: creating BPF map %s: %w", name, err)
			}
			p.maps = append(p.maps, m)
			objMaps[name] = m
			if slices.Contains(sharedMaps, name) {
				shared[name] = m
			}
		}
		if obj.name == "tcp" {
			p.ports, p.conns = objMaps["ports"], objMaps["conns"]
		}
		for _, prog := range obj.progs {
			if slices.Contains(opts.Skip, prog) {
				p.disabled[prog] = ErrSkipped
				continue
			}
			ps, ok := spec.Programs[prog]
			if !ok {
				p.disabled[prog] = fmt.Errorf("probe: program %s is not in the %s object", prog, obj.name)
				continue
			}
			if ps.Type == ebpf.Tracing && btfErr != nil {
				p.disabled[prog] = btfErr
				continue
			}
			if err := p.loadProgram(spec, ps.Copy(), objMaps, opts.breakProgram == prog); err != nil {
				p.disabled[prog] = err
			}
		}
	}
	p.tracked, p.config, p.hists = shared["tracked"], shared["config"], shared["hists"]
	if len(p.progs) == 0 {
		errs := make([]error, 0, len(p.disabled))
		allPerm := true
		for _, name := range Programs {
			if err := p.disabled[name]; err != nil {
				errs = append(errs, err)
				allPerm = allPerm && isPermission(err)
			}
		}
		p.Close()
		if allPerm && len(errs) > 0 {
			// Each says it needs privileges: one is enough.
			return nil, fmt.Errorf("%w (and %d more programs refused alike)", errs[0], len(errs)-1)
		}
		return nil, fmt.Errorf("probe: no BPF program could load: %w", errors.Join(errs...))
	}
	for _, port := range opts.Ports {
		if err := p.WatchPort(port); err != nil {
			p.Close()
			return nil, err
		}
	}
	if opts.PID != 0 {
		if err := p.Process(opts.PID); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// loadProgram loads one program against the object's maps and attaches it.
func (p *Probes) loadProgram(spec *ebpf.CollectionSpec, ps *ebpf.ProgramSpec, objMaps map[string]*ebpf.Map, broken bool) error {
	if broken {
		// Reads a register never written: "R5 !read_ok".
		ps.Instructions = asm.Instructions{
			asm.Mov.Reg(asm.R0, asm.R5),
			asm.Return(),
		}
	}
	one := &ebpf.CollectionSpec{
		Maps:      maps.Clone(spec.Maps),
		Programs:  map[string]*ebpf.ProgramSpec{ps.Name: ps},
		Types:     spec.Types,
		ByteOrder: spec.ByteOrder,
	}
	// Only the maps the program uses, all of them already created.
	used := make(map[string]*ebpf.Map)
	for _, ins := range ps.Instructions {
		if ref := ins.Reference(); ref != "" {
			if m, ok := objMaps[ref]; ok {
				used[ref] = m
			}
		}
	}
	for name := range one.Maps {
		if _, ok := used[name]; !ok {
			delete(one.Maps, name)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{MapReplacements: used})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("probe: the verifier rejected %s: %w", ps.Name, err)
		}
		if isPermission(err) {
			return errNeedsPrivilege(err)
		}
		return fmt.Errorf("probe: loading %s: %w", ps.Name, err)
	}
	prog := coll.DetachProgram(ps.Name)
	coll.Close()
	var l link.Link
	switch ps.Type {
	case ebpf.Tracing:
		l, err = link.AttachTracing(link.TracingOptions{Program: prog})
	case ebpf.RawTracepoint:
		l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: ps.AttachTo, Program: prog})
	default:
		err = fmt.Errorf("program type %s", ps.Type)
	}
	if err != nil {
		prog.Close()
		if isPermission(err) {
			return errNeedsPrivilege(err)
		}
		return fmt.Errorf("probe: attaching %s: %w", ps.Name, err)
	}
	p.progs = append(p.progs, prog)
	p.links = append(p.links, l)
	return nil
}

// Disabled returns the programs that are not running, each with why: the
// verifier's rejection, a missing tracepoint, Options.Skip.
func (p *Probes) Disabled() map[string]error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.disabled)
}

// roleID returns role's id, assigning one. p.mu is held.
func (p *Probes) roleID(role string) (uint32, error) {
	if id, ok := p.roles[role]; ok {
		return id, nil
	}
	if len(p.names) >= maxRoles {
		return 0, fmt.Errorf("probe: role %q: at most %d roles", role, maxRoles)
	}
	id := uint32(len(p.names))
	p.roles[role] = id
	p.names = append(p.names, role)
	return id, nil
}

// Track counts thread tid (an OS thread id, as unix.Gettid returns) under
// role. A thread tracked again changes role. At most 4096 threads.
func (p *Probes) Track(tid int, role string) error {
	if p == nil {
		return nil
	}
	if tid <= 0 || role == "" {
		return fmt.Errorf("probe: Track(%d, %q): need a thread id and a role", tid, role)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("probe: closed")
	}
	id, err := p.roleID(role)
	if err != nil {
		return err
	}
	if err := p.tracked.Put(uint32(tid), id); err != nil {
		return fmt.Errorf("probe: tracking thread %d: %w", tid, err)
	}
	p.tids[tid] = role
	return p.writeConfig()
}

// Untrack stops counting thread tid under its role (it still counts under
// ProcessRole if it belongs to the process given to Process).
func (p *Probes) Untrack(tid int) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("probe: closed")
	}
	delete(p.tids, tid)
	if err := p.tracked.Delete(uint32(tid)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("probe: untracking thread %d: %w", tid, err)
	}
	return p.writeConfig()
}

// Process counts every thread of process pid that is not tracked under
// ProcessRole; 0 stops it.
func (p *Probes) Process(pid int) error {
	if p == nil {
		return nil
	}
	if pid < 0 {
		return fmt.Errorf("probe: Process(%d): not a process id", pid)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("probe: closed")
	}
	if _, err := p.roleID(ProcessRole); err != nil {
		return err
	}
	p.pid = pid
	return p.writeConfig()
}

// writeConfig writes the programs' config (bpf/common.h): the watched
// process, its role, how many tracked threads lie outside it (the
// programs skip every thread of another process at once only when none
// does), and a new generation, which tells the programs to read each
// thread's role again instead of the one its task storage holds. p.mu is
// held.
func (p *Probes) writeConfig() error {
	foreign := 0
	for tid := range p.tids {
		if p.pid == 0 || !threadOf(p.pid, tid) {
			foreign++
		}
	}
	cfg := make([]byte, configSize)
	putU32(cfg[0:], uint32(p.pid))
	putU32(cfg[4:], p.roles[ProcessRole])
	putU32(cfg[8:], uint32(foreign))
	p.gen++
	binary.NativeEndian.PutUint64(cfg[16:], p.gen)
	if err := p.config.Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("probe: watching process %d: %w", p.pid, err)
	}
	return nil
}

// threadOf reports whether thread tid belongs to process pid.
func threadOf(pid, tid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, tid))
	return err == nil
}

// WatchPort watches TCP connections with this local port.
func (p *Probes) WatchPort(port int) error {
	if p == nil {
		return nil
	}
	if port <= 0 || port > 65535 {
		return fmt.Errorf("probe: WatchPort(%d): not a port", port)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("probe: closed")
	}
	if err := p.ports.Put(uint32(port), uint8(1)); err != nil {
		return fmt.Errorf("probe: watching port %d: %w", port, err)
	}
	return nil
}

// Snapshot reads every histogram and connection.
func (p *Probes) Snapshot() (Snapshot, error) {
	if p == nil {
		return Snapshot{}, errNil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Snapshot{}, errors.New("probe: closed")
	}
	s := Snapshot{Roles: make(map[string]map[Metric]Histogram, len(p.names))}
	perCPU := make([][]byte, p.ncpu)
	for id, role := range p.names {
		ms := make(map[Metric]Histogram, numMetrics)
		for m, metric := range Metrics {
			if err := p.hists.Lookup(histIndex(uint32(id), m), &perCPU); err != nil {
				return Snapshot{}, fmt.Errorf("probe: reading %s %s: %w", role, metric, err)
			}
			h, err := decodePerCPUHist(perCPU)
			if err != nil {
				return Snapshot{}, fmt.Errorf("probe: reading %s %s: %w", role, metric, err)
			}
			ms[metric] = h
		}
		s.Roles[role] = ms
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return Snapshot{}, fmt.Errorf("probe: reading the clock: %w", err)
	}
	now, mono := time.Now(), uint64(ts.Nano())
	var k, v []byte
	it := p.conns.Iterate()
	for it.Next(&k, &v) {
		key, err := decodeConnKey(k)
		if err != nil {
			return Snapshot{}, err
		}
		val, err := decodeConnVal(v)
		if err != nil {
			return Snapshot{}, err
		}
		c := ConnStats{
			Local: key.local, Remote: key.remote,
			SRTT:        val.srtt,
			LastSRTT:    time.Duration(val.srttUS) * time.Microsecond,
			SendQueue:   val.sndQueue,
			RecvQueue:   val.rcvQueue,
			SendCwnd:    val.sndCwnd,
			Retransmits: val.retransmits,
		}
		if val.lastNS != 0 && val.lastNS <= mono {
			c.LastSeen = now.Add(-time.Duration(mono - val.lastNS))
		}
		s.Conns = append(s.Conns, c)
	}
	if err := it.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("probe: reading connections: %w", err)
	}
	return s, nil
}

// Close detaches every probe and frees its maps.
func (p *Probes) Close() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	for _, prog := range p.progs {
		errs = append(errs, prog.Close())
	}
	for _, m := range p.maps {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}
