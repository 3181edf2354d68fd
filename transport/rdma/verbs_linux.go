//go:build cgo

package rdma

// The cgo surface of the verbs layer: thin wrappers over ibv_shim_linux.c,
// one cgo call each. Memory crosses as addresses (uintptr), kept alive
// by the caller.

/*
#cgo LDFLAGS: -ldl
#cgo CFLAGS: -Wall -Wextra
#include <stdlib.h>
#include <string.h>
#include "ibv_shim.h"

static char *gf_cstr(_GoString_ s) {
	size_t n = _GoStringLen(s);
	char *c = malloc(n + 1);
	if (c) {
		memcpy(c, _GoStringPtr(s), n);
		c[n] = 0;
	}
	return c;
}

static int gf_ibv_load_s(_GoString_ path, char *err, size_t errlen) {
	char *p = gf_cstr(path);
	if (!p)
		return GF_IBV_DLOPEN;
	int r = gf_ibv_load(p, err, errlen);
	free(p);
	return r;
}

static uintptr_t gf_ibv_open_device_s(_GoString_ name, int port, int gid_index, struct gf_ibv_attr *attr, int *err) {
	char *n = gf_cstr(name);
	if (!n) {
		*err = 12;
		return 0;
	}
	uintptr_t d = gf_ibv_open_device(n, port, gid_index, attr, err);
	free(n);
	return d;
}
*/
import "C"

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Library is the verbs library opened at run time.
const Library = "libibverbs.so.1"

var load struct {
	once sync.Once
	err  error
}

// Load opens libibverbs and resolves the verbs used, once; the error says
// why RDMA is unavailable and matches ErrUnavailable.
func Load() error {
	load.once.Do(func() {
		var buf [512]C.char
		switch C.gf_ibv_load_s(Library, &buf[0], C.size_t(len(buf))) {
		case C.GF_IBV_OK:
		case C.GF_IBV_DLOPEN:
			load.err = fmt.Errorf("%w: cannot load %s (install rdma-core's libibverbs1): %s", ErrUnavailable, Library, C.GoString(&buf[0]))
		default:
			load.err = fmt.Errorf("%w: %s lacks %s", ErrUnavailable, Library, C.GoString(&buf[0]))
		}
	})
	return load.err
}

// Devices lists the verbs devices libibverbs finds; ErrNoDevices when it
// loads but finds none.
func Devices() ([]string, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	const size = 4096
	cbuf := C.malloc(size)
	defer C.free(cbuf)
	n := C.gf_ibv_device_names((*C.char)(cbuf), size)
	if n < 0 {
		if syscall.Errno(-n) == syscall.ENOSYS {
			// libibverbs says so when the kernel has no verbs support at
			// all (no /sys/class/infiniband_verbs): no devices either.
			return nil, fmt.Errorf("%w (the kernel has no RDMA support)", ErrNoDevices)
		}
		return nil, fmt.Errorf("%w: ibv_get_device_list: %w", ErrUnavailable, syscall.Errno(-n))
	}
	if n == 0 {
		return nil, ErrNoDevices
	}
	buf := C.GoBytes(cbuf, size)
	var names []string
	for _, b := range bytes.Split(buf, []byte{0}) {
		if len(b) > 0 && len(names) < int(n) {
			names = append(names, string(b))
		}
	}
	return names, nil
}

// Open opens a verbs device by name.
func Open(name string, o OpenOptions) (Device, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	if o.Port == 0 {
		o.Port = 1
	}
	var attr C.struct_gf_ibv_attr
	var cerr C.int
	h := C.gf_ibv_open_device_s(name, C.int(o.Port), C.int(o.GIDIndex), &attr, &cerr)
	if h == 0 {
		return nil, fmt.Errorf("rdma: open %s port %d: %w", name, o.Port, syscall.Errno(cerr))
	}
	mtu := 256 << max(int(attr.active_mtu)-1, 0)
	d := &ibvDevice{h: h, name: name, port: o.Port, gidIndex: o.GIDIndex, attr: DeviceAttr{
		MaxInline: 220, // asked of each QP; a device that takes less gets a QP without (CreateQP)
		MaxMRSize: uint64(attr.max_mr_size),
		LID:       uint16(attr.lid),
		MTU:       mtu,
		GIDIndex:  o.GIDIndex,
	}}
	for i := range d.attr.GID {
		d.attr.GID[i] = byte(attr.gid[i])
	}
	if attr.port_state != 4 {
		d.Close()
		return nil, fmt.Errorf("rdma: %s port %d is not active (state %d)", name, o.Port, attr.port_state)
	}
	return d, nil
}

type ibvDevice struct {
	h        C.uintptr_t
	name     string
	port     int
	gidIndex int
	attr     DeviceAttr
	once     sync.Once
}

var _ Device = (*ibvDevice)(nil)

func (d *ibvDevice) Name() string     { return d.name }
func (d *ibvDevice) Attr() DeviceAttr { return d.attr }

func (d *ibvDevice) Close() error {
	d.once.Do(func() { C.gf_ibv_close_device(d.h) })
	return nil
}

// Alloc returns memory outside the Go heap for the connection's own
// registered buffers, so the device's access to it after a call returns
// breaks no cgo rule.
func (d *ibvDevice) Alloc(n int) ([]byte, error) {
	return unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
}

// Free returns memory from Alloc.
func (d *ibvDevice) Free(b []byte) error { return unix.Munmap(b) }

// NewDomain allocates a protection domain.
func (d *ibvDevice) NewDomain() (Domain, error) {
	var cerr C.int
	pd := C.gf_ibv_alloc_pd(d.h, &cerr)
	if pd == 0 {
		return nil, fmt.Errorf("rdma: protection domain on %s: %w", d.name, syscall.Errno(cerr))
	}
	return &ibvDomain{dev: d, pd: pd}, nil
}

type ibvDomain struct {
	dev  *ibvDevice
	pd   C.uintptr_t
	once sync.Once
}

var _ Domain = (*ibvDomain)(nil)

func (pd *ibvDomain) Close() error {
	var err error
	pd.once.Do(func() {
		if r := C.gf_ibv_dealloc_pd(pd.pd); r != 0 {
			err = fmt.Errorf("rdma: free protection domain: %w", syscall.Errno(r))
		}
	})
	return err
}

func (pd *ibvDomain) Register(b []byte, access Access) (MR, error) {
	d := pd.dev
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty region", ErrRegister)
	}
	var lkey, rkey C.uint32_t
	var cerr C.int
	addr := addrOf(b)
	h := C.gf_ibv_reg_mr(pd.pd, C.uintptr_t(addr), C.size_t(len(b)), C.int(access), &lkey, &rkey, &cerr)
	runtime.KeepAlive(b)
	if h == 0 {
		why := ""
		if syscall.Errno(cerr) == syscall.ENOMEM || syscall.Errno(cerr) == syscall.EPERM {
			why = " (the locked-memory limit, ulimit -l, is too low?)"
		}
		return nil, fmt.Errorf("%w: %d bytes on %s: %w%s", ErrRegister, len(b), d.name, syscall.Errno(cerr), why)
	}
	return &ibvMR{h: h, buf: b, addr: uint64(addr), lkey: uint32(lkey), rkey: uint32(rkey)}, nil
}

type ibvMR struct {
	h          C.uintptr_t
	buf        []byte
	addr       uint64
	lkey, rkey uint32
	once       sync.Once
}

func (m *ibvMR) Addr() uint64  { return m.addr }
func (m *ibvMR) Len() int      { return len(m.buf) }
func (m *ibvMR) LKey() uint32  { return m.lkey }
func (m *ibvMR) RKey() uint32  { return m.rkey }
func (m *ibvMR) Bytes() []byte { return m.buf }
func (m *ibvMR) Close() error {
	var err error
	m.once.Do(func() {
		if r := C.gf_ibv_dereg_mr(m.h); r != 0 {
			err = fmt.Errorf("rdma: deregister: %w", syscall.Errno(r))
		}
	})
	return err
}

func (pd *ibvDomain) CreateQP(cfg QPConfig) (QP, error) {
	d := pd.dev
	var qpn C.uint32_t
	var fd, inl, cerr C.int
	h := C.gf_ibv_create_qp(d.h, pd.pd, C.int(d.port), C.int(cfg.SendDepth), C.int(cfg.RecvDepth), C.int(cfg.MaxInline), &qpn, &fd, &inl, &cerr)
	if h == 0 {
		return nil, fmt.Errorf("rdma: create QP on %s: %w", d.name, syscall.Errno(cerr))
	}
	// Wait sleeps in the Go poller on a duplicate of the completion
	// channel's descriptor; closing the duplicate wakes it, and the
	// channel itself is closed by libibverbs.
	dup, err := unix.Dup(int(fd))
	if err != nil {
		C.gf_ibv_destroy_qp(h)
		return nil, fmt.Errorf("rdma: completion channel: %w", err)
	}
	cfg.MaxInline = int(inl)
	return &ibvQP{h: h, dev: d, num: uint32(qpn), cfg: cfg, ch: os.NewFile(uintptr(dup), "rdma-completions")}, nil
}

type ibvQP struct {
	dev *ibvDevice
	num uint32
	cfg QPConfig
	ch  *os.File

	mu   sync.RWMutex // held to read by every verb; Close takes it to write
	h    C.uintptr_t
	dead bool
}

var _ QP = (*ibvQP)(nil)

func (q *ibvQP) Num() uint32 { return q.num }

// MaxInline is the inline data the device granted, perhaps less than asked.
func (q *ibvQP) MaxInline() int { return q.cfg.MaxInline }

// use runs f with the QP alive, or returns ErrQPClosed.
func (q *ibvQP) use(f func() error) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.dead {
		return ErrQPClosed
	}
	return f()
}

func errno(r C.int, what string) error {
	if r == 0 {
		return nil
	}
	if r < 0 {
		r = -r
	}
	return fmt.Errorf("rdma: %s: %w", what, syscall.Errno(r))
}

func (q *ibvQP) Connect(psn uint32, gidIndex int, remote Endpoint) error {
	if gidIndex < 0 {
		gidIndex = q.dev.gidIndex
	}
	mtu := 1
	for m := 256; m < remote.MTU && mtu < 5; m <<= 1 {
		mtu++
	}
	gid := C.CBytes(remote.GID[:])
	defer C.free(gid)
	return q.use(func() error {
		return errno(C.gf_ibv_connect_qp(q.h, C.int(q.dev.port), C.int(gidIndex), C.uint32_t(psn),
			C.uint32_t(remote.QPN), C.uint32_t(remote.PSN), C.uint16_t(remote.LID), C.int(mtu),
			(*C.uint8_t)(gid), C.int(q.cfg.RNRRetry)), "connect QP")
	})
}

func (q *ibvQP) PostRecv(wr RecvWR) error {
	return q.use(func() error {
		return errno(C.gf_ibv_post_recv(q.h, C.uint64_t(wr.ID), C.uint64_t(wr.Local.MR.Addr()+uint64(wr.Local.Off)),
			C.uint32_t(wr.Local.Len), C.uint32_t(wr.Local.MR.LKey())), "post receive")
	})
}

func (q *ibvQP) PostSend(wr SendWR) error {
	op, inl := 1, 0
	if wr.Op == OpWrite {
		op = 2
	}
	if wr.Inline {
		inl = 1
	}
	return q.use(func() error {
		return errno(C.gf_ibv_post_send(q.h, C.uint64_t(wr.ID), C.int(op), C.uint64_t(wr.Local.MR.Addr()+uint64(wr.Local.Off)),
			C.uint32_t(wr.Local.Len), C.uint32_t(wr.Local.MR.LKey()), C.uint64_t(wr.Remote.Addr), C.uint32_t(wr.Remote.RKey), C.int(inl)), "post send")
	})
}

func (q *ibvQP) Poll(wc []Completion) (int, error) {
	var raw [32]C.struct_gf_ibv_wc
	n := 0
	err := q.use(func() error {
		r := C.gf_ibv_poll(q.h, &raw[0], C.int(min(len(wc), len(raw))))
		if r < 0 {
			return errno(r, "poll CQ")
		}
		n = int(r)
		return nil
	})
	for i := range n {
		c := Completion{ID: uint64(raw[i].id), Status: Status(raw[i].status), Len: int(raw[i].len)}
		switch {
		case raw[i].opcode&128 != 0:
			c.Op = OpRecv
		case raw[i].opcode == 1:
			c.Op = OpWrite
		default:
			c.Op = OpSend
		}
		// A failed completion's opcode is undefined; the ID says which.
		if c.Status != StatusSuccess && c.ID&wrWrite != 0 {
			c.Op = OpWrite
		}
		wc[i] = c
	}
	return n, err
}

func (q *ibvQP) Arm() error {
	return q.use(func() error { return errno(C.gf_ibv_arm(q.h), "arm CQ") })
}

func (q *ibvQP) Wait() error {
	rc, err := q.ch.SyscallConn()
	if err != nil {
		return ErrQPClosed
	}
	var werr error
	err = rc.Read(func(uintptr) bool {
		werr = q.use(func() error {
			r := C.gf_ibv_take_event(q.h)
			if r == -C.int(syscall.EAGAIN) {
				return syscall.EAGAIN
			}
			return errno(r, "completion event")
		})
		return werr != syscall.EAGAIN
	})
	if err != nil {
		return ErrQPClosed
	}
	return werr
}

func (q *ibvQP) State() QPState {
	st := StateError
	q.use(func() error {
		if r := C.gf_ibv_qp_state(q.h); r >= 0 {
			st = QPState(r)
		}
		return nil
	})
	return st
}

// Close moves the QP to the error state, which flushes its work, wakes
// Wait, and destroys it once no verb is running.
func (q *ibvQP) Close() error {
	q.use(func() error { C.gf_ibv_to_error(q.h); return nil })
	q.ch.Close()
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.dead {
		q.dead = true
		C.gf_ibv_destroy_qp(q.h)
	}
	return nil
}
