//go:build linux

package main

/*
#include "gf.h"
*/
import "C"

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// conn is the live sessions and their devices, by ordinal. It does not
// change once published.
type conn struct {
	// s is the first server's session: it serves what belongs to no
	// device (pinned host memory, IPC handles of this host).
	s *interpose.Session
	// sessions are one per server, in GPUFABRIC_SERVER's order; the
	// devices of each are numbered after those of the ones before.
	sessions []*interpose.Session
	servers  []string      // each session's server, for messages
	lost     []atomic.Bool // each session's loss was reported
	devs     []*interpose.Device
	version  int32
}

var (
	live      atomic.Pointer[conn]
	connectMu sync.Mutex
	connected bool
	connErr   api.Result // the sticky failure of the first attempt
)

// fallbackDriverVersion is reported by cuDriverGetVersion when no server can
// be reached: the version of the interposer's API table.
const fallbackDriverVersion = 12080

// connectTimeout bounds the dial and the attaches of the first call.
const connectTimeout = 30 * time.Second

// connect opens the session once; later calls return the first outcome. A
// failure is explained on stderr once, as the driver has no other voice.
func connect() api.Result {
	connectMu.Lock()
	defer connectMu.Unlock()
	if connected {
		return connErr
	}
	connected = true
	c, r, err := dial()
	if err != nil {
		connErr = r
		fmt.Fprintf(os.Stderr, "gpufabric: no GPU: %v\n", err)
		return r
	}
	live.Store(c)
	C.gf_set_devices(C.int(len(c.devs)), C.int(c.version))
	return api.Success
}

func dial() (*conn, api.Result, error) {
	cfg, err := parseConfig(os.Getenv)
	if err != nil {
		return nil, api.ErrNoDevice, err
	}
	tlsConfig, err := cfg.tls.Config()
	if err != nil {
		return nil, api.ErrNoDevice, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	// One session per server, opened at once: each measures the
	// transports that reach its server (shared memory when it shares this
	// host) and keeps the fastest, unless one is forced.
	type opened struct {
		devs []*interpose.Device
		s    *interpose.Session
		r    api.Result
		err  error
	}
	out := make([]opened, len(cfg.targets))
	var wg sync.WaitGroup
	for i, t := range cfg.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &out[i]
			o.s, o.devs, o.r, o.err = attachAll(ctx, t, cfg, tlsConfig)
		}()
	}
	wg.Wait()
	c := &conn{}
	var r api.Result
	var errs []error
	for i, o := range out {
		if o.err != nil {
			r, errs = o.r, append(errs, o.err)
			continue
		}
		c.sessions = append(c.sessions, o.s)
		c.servers = append(c.servers, cfg.targets[i].server)
		c.devs = append(c.devs, o.devs...)
	}
	if len(errs) == 0 {
		// Addresses name their device, and so their server: two servers
		// that could hand out one address would make a copy ambiguous.
		if err := interpose.CheckAddressRanges(c.devs); err != nil {
			r, errs = api.ErrNoDevice, append(errs, err)
		}
	}
	if len(errs) > 0 {
		for _, s := range c.sessions {
			s.Close()
		}
		return nil, r, errors.Join(errs...)
	}
	c.s = c.sessions[0]
	c.version = c.devs[0].Info().DriverVersion
	c.lost = make([]atomic.Bool, len(c.sessions))
	return c, api.Success, nil
}

// attachAll connects to one server and attaches what t asks of it.
func attachAll(ctx context.Context, t target, cfg config, tlsConfig *tls.Config) (*interpose.Session, []*interpose.Device, api.Result, error) {
	s, err := interpose.Connect(ctx, t.server, interpose.Options{Token: t.token, Transport: cfg.transport, BulkTransport: cfg.bulk, TLS: tlsConfig})
	if err != nil {
		r := api.ErrNoDevice
		if api.ResultOf(err) == api.ErrNotPermitted {
			r = api.ErrNotInitialized
		}
		return nil, nil, r, fmt.Errorf("GPU server %s: %w", t.server, err)
	}
	n := t.devices
	if n == 0 {
		n = int(s.Server().Devices)
	}
	if n > int(s.Server().Devices) {
		s.Close()
		return nil, nil, api.ErrNoDevice, fmt.Errorf("GPUFABRIC_DEVICES asks %d devices; %s has %d", n, t.server, s.Server().Devices)
	}
	var devs []*interpose.Device
	for range n {
		d, err := s.Attach(interpose.AnyDevice, cfg.share)
		if err != nil {
			s.Close()
			return nil, nil, api.ErrNoDevice, fmt.Errorf("attach a device of %s with share %s: %w", t.server, shareString(cfg.share), err)
		}
		devs = append(devs, d)
	}
	if len(devs) == 0 {
		s.Close()
		return nil, nil, api.ErrNoDevice, fmt.Errorf("GPU server %s has no devices", t.server)
	}
	return s, devs, api.Success, nil
}

// ordinals are the program's device numbers of session s.
func (c *conn) ordinals(s *interpose.Session) []int {
	var out []int
	for i, d := range c.devs {
		if d.Session() == s {
			out = append(out, i)
		}
	}
	return out
}

// reportLost says on stderr, once per server, that a server of a run
// spanning servers was lost: its devices' calls fail with
// CUDA_ERROR_DEINITIALIZED from then on, while the other servers' devices
// keep working. The failing call says it, so the line comes before the
// program can act on the error. A session whose send failed may not know
// yet that it is over: until one loss is reported, the sessions that do
// not know are asked with a ping, a round trip each, paid only by calls
// that already failed.
func (c *conn) reportLost() {
	known := false
	for i := range c.lost {
		known = known || c.lost[i].Load()
	}
	for i, s := range c.sessions {
		err := s.Err()
		if err == nil && !known {
			if perr := s.Ping(); api.ResultOf(perr) == api.ErrDeinitialized {
				err = perr
			}
		}
		if err != nil && !c.lost[i].Swap(true) {
			fmt.Fprintf(os.Stderr, "gpufabric: GPU server %s (device %s of this program) lost: %v; its calls fail with CUDA_ERROR_DEINITIALIZED, the other servers' devices keep working\n",
				c.servers[i], strings.Trim(fmt.Sprint(c.ordinals(s)), "[]"), err)
		}
	}
}

// alive reports whether a session of the program is still up: the library
// answers CUDA_ERROR_DEINITIALIZED itself only when none is.
func alive() bool {
	c := live.Load()
	if c == nil || len(c.sessions) < 2 {
		return false
	}
	for _, s := range c.sessions {
		if s.Err() == nil {
			return true
		}
	}
	return false
}

func shareString(s interpose.Share) string {
	if s.Bytes > 0 {
		return fmt.Sprintf("%d bytes", s.Bytes)
	}
	return fmt.Sprintf("%g", s.Fraction)
}

// device returns the session's device of ordinal dev.
func device(dev C.int) (*interpose.Device, api.Result) {
	c := live.Load()
	if c == nil {
		return nil, api.ErrNotInitialized
	}
	if dev < 0 {
		return nil, api.ErrInvalidContext
	}
	if int(dev) >= len(c.devs) {
		return nil, api.ErrInvalidDevice
	}
	return c.devs[dev], api.Success
}

// ret converts an error into the CUresult the application gets. The first
// CUDA_ERROR_DEINITIALIZED once no session is left (the one server is
// gone, or every one of a run spanning servers) switches the C entry
// points to answer it themselves from then on; while a server is left,
// only the calls of the lost one's devices fail.
func ret(err error) C.CUresult {
	r := api.ResultOf(err)
	if r == api.ErrDeinitialized {
		if alive() {
			live.Load().reportLost()
		} else {
			C.gf_set_state(C.GF_STATE_GONE)
		}
	}
	return C.CUresult(r)
}

func res(r api.Result) C.CUresult { return ret(r.Err()) }

//export gfgo_init
func gfgo_init() C.CUresult {
	if r := connect(); r != api.Success {
		return C.CUresult(r)
	}
	C.gf_set_state(C.GF_STATE_READY)
	return 0
}

//export gfgo_driverVersion
func gfgo_driverVersion() C.int {
	if connect() != api.Success {
		return fallbackDriverVersion
	}
	return C.int(live.Load().version)
}

//export gfgo_procAddress
func gfgo_procAddress(symbol *C.char, version C.int, flags C.cuuint64_t) C.int {
	var driver int
	if c := live.Load(); c != nil {
		driver = int(c.version)
	}
	return C.int(resolveProc(C.GoString(symbol), int(version), uint64(flags), driver))
}

// ---- devices ----

//export gfgo_deviceName
func gfgo_deviceName(name *C.char, n C.int, dev C.int) C.CUresult {
	d, r := device(dev)
	if r != api.Success {
		return res(r)
	}
	if name == nil || n <= 0 {
		return res(api.ErrInvalidValue)
	}
	putString(name, int(n), d.Info().Name)
	return 0
}

// putString copies s into the C buffer of size n, truncated and
// NUL-terminated as the driver does.
func putString(dst *C.char, n int, s string) {
	b := unsafe.Slice((*byte)(unsafe.Pointer(dst)), n)
	k := copy(b[:n-1], s)
	b[k] = 0
}

//export gfgo_deviceUUID
func gfgo_deviceUUID(uuid *C.CUuuid, dev C.int) C.CUresult {
	d, r := device(dev)
	if r != api.Success {
		return res(r)
	}
	if uuid == nil {
		return res(api.ErrInvalidValue)
	}
	u := d.Info().UUID
	copy(unsafe.Slice((*byte)(unsafe.Pointer(uuid)), 16), u[:])
	return 0
}

//export gfgo_deviceTotalMem
func gfgo_deviceTotalMem(bytes *C.size_t, small *C.uint, dev C.int) C.CUresult {
	d, r := device(dev)
	if r != api.Success {
		return res(r)
	}
	total := d.Info().TotalMem // the share, not the card
	switch {
	case bytes != nil:
		*bytes = C.size_t(total)
	case small != nil:
		*small = C.uint(min(total, 1<<32-1))
	default:
		return res(api.ErrInvalidValue)
	}
	return 0
}

//export gfgo_deviceAttribute
func gfgo_deviceAttribute(pi *C.int, attr C.int, dev C.int) C.CUresult {
	d, r := device(dev)
	if r != api.Success {
		return res(r)
	}
	if pi == nil {
		return res(api.ErrInvalidValue)
	}
	attrs := d.Info().Attrs
	if attr <= 0 || attr > 1<<16 {
		return res(api.ErrInvalidValue)
	}
	// Attributes past the snapshot are ones the server does not report:
	// zero, as a driver answers for a feature the device lacks.
	var v int32
	if int(attr) < len(attrs) {
		v = attrs[attr]
	}
	*pi = C.int(v)
	return 0
}

// pciBusID formats a device's PCI location from its attributes, as
// cuDeviceGetPCIBusId does: "dddd:bb:dd.0".
func pciBusID(d *interpose.Device) string {
	a := d.Info().Attrs
	get := func(i int) int32 {
		if i < len(a) {
			return a[i]
		}
		return 0
	}
	return fmt.Sprintf("%04x:%02x:%02x.0", get(api.AttrPCIDomainID), get(api.AttrPCIBusID), get(api.AttrPCIDeviceID))
}

//export gfgo_devicePCIBusId
func gfgo_devicePCIBusId(buf *C.char, n C.int, dev C.int) C.CUresult {
	d, r := device(dev)
	if r != api.Success {
		return res(r)
	}
	if buf == nil || n <= 0 {
		return res(api.ErrInvalidValue)
	}
	putString(buf, int(n), pciBusID(d))
	return 0
}

//export gfgo_deviceByPCIBusId
func gfgo_deviceByPCIBusId(dev *C.int, id *C.char) C.CUresult {
	c := live.Load()
	if c == nil {
		return res(api.ErrNotInitialized)
	}
	if dev == nil || id == nil {
		return res(api.ErrInvalidValue)
	}
	want, err := normalizeBusID(C.GoString(id))
	if err != nil {
		return res(api.ErrInvalidValue)
	}
	for i, d := range c.devs {
		if pciBusID(d) == want {
			*dev = C.int(i)
			return 0
		}
	}
	return res(api.ErrInvalidDevice)
}

// normalizeBusID reads the forms the driver accepts ("bb:dd.f",
// "dddd:bb:dd.f", NVML's "dddddddd:bb:dd.f") into cuDeviceGetPCIBusId's.
func normalizeBusID(s string) (string, error) {
	var dom, bus, dev, fn uint32
	if _, err := fmt.Sscanf(s, "%x:%x:%x.%x", &dom, &bus, &dev, &fn); err != nil {
		dom = 0
		if _, err := fmt.Sscanf(s, "%x:%x.%x", &bus, &dev, &fn); err != nil {
			return "", errors.New("bad PCI bus id")
		}
	}
	return fmt.Sprintf("%04x:%02x:%02x.0", dom, bus, dev), nil
}

// ---- contexts ----

//export gfgo_ctxSynchronize
func gfgo_ctxSynchronize(dev C.int) C.CUresult {
	if inHostFunc() {
		return res(api.ErrNotPermitted)
	}
	d, r := device(dev)
	if r != api.Success {
		return res(r)
	}
	return ret(d.Synchronize())
}

// gfgo_ctxRelease frees what a context held as it is destroyed (or a
// primary context reset): its allocations, once the work queued before has
// run.
//
//export gfgo_ctxRelease
func gfgo_ctxRelease(ctx C.uintptr_t, dev C.int) C.CUresult {
	d, r := device(dev)
	if r != api.Success {
		return res(r)
	}
	if err := d.Synchronize(); api.ResultOf(err) == api.ErrDeinitialized {
		return ret(err)
	}
	freed := devMem.removeCtx(uintptr(ctx))
	for _, a := range freed {
		if err := d.Free(interpose.DevicePtr(a.base)); err != nil {
			return ret(err)
		}
	}
	if len(freed) > 0 {
		// The frees were sent without waiting: one round trip sees them
		// done, so the memory is free on the server (and in smi) when
		// the context's destruction returns, and a failed free is told.
		return ret(d.Synchronize())
	}
	return 0
}

// closeOnce ends the session once, at process exit.
var closeOnce sync.Once

// gfgo_exit ends the session as the process exits (the library's
// destructor calls it when the program returns from main or calls exit):
// it says Goodbye and waits, up to interpose.GoodbyeTimeout, for the
// server to release everything the session held, so the capacity is free
// when the program's exit is seen; a program killed by a signal skips it,
// and the server frees its session when the connection drops. Calls after
// it (from other libraries' destructors) answer CUDA_ERROR_DEINITIALIZED.
// It reports whether there was a session to end, and how closing it went.
//
// Contexts do not end the session: cuCtxDestroy and
// cuDevicePrimaryCtxReset free a context's memory, while the session, its
// devices and their shares stay the process's until it exits.
//
//export gfgo_exit
func gfgo_exit() (had C.int, r C.CUresult) {
	closeOnce.Do(func() {
		c := live.Load()
		if c == nil {
			return
		}
		C.gf_set_state(C.GF_STATE_GONE)
		had = 1
		// Every server at once: each frees what the program held there.
		errs := make([]error, len(c.sessions))
		var wg sync.WaitGroup
		for i, s := range c.sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Close()
			}()
		}
		wg.Wait()
		if errors.Join(errs...) != nil {
			r = C.CUresult(api.ErrDeinitialized)
		}
	})
	return had, r
}
