package probe

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// The layouts of the BPF maps' keys and values, decoded here by hand (no
// unsafe, no reflection) so that decoding is testable without a kernel.
// Keep them in step with bpf/common.h and bpf/tcp.c.

const (
	maxRoles   = 16 // MAX_ROLES
	numMetrics = 7  // NMETRICS

	histSize    = (NumBuckets + 2) * 8    // struct hist
	configSize  = 4*4 + 8                 // struct config
	connKeySize = 16 + 16 + 2 + 2 + 2 + 2 // struct conn_key
	connValSize = (NumBuckets+4)*8 + 4*4  // struct conn_val
	afInet      = 2                       // AF_INET
	afInet6     = 10                      // AF_INET6
)

// Metric names one of the histograms kept per role.
type Metric string

// The metrics, in the order of enum metric in bpf/common.h.
const (
	// RunQueue is run-queue delay: from the moment a thread became
	// runnable (woken, or preempted while still runnable) to the moment it
	// ran again. Time it wanted a CPU and had none.
	RunQueue Metric = "runqueue"
	// OffCPU is time off a CPU: from being switched out to being switched
	// back in, so blocked time plus run-queue delay.
	OffCPU Metric = "offcpu"
	// SyscallRead is time in read, readv, pread64, recvfrom, recvmsg,
	// recvmmsg, blocking included.
	SyscallRead Metric = "syscall_read"
	// SyscallWrite is time in write, writev, pwrite64, sendto, sendmsg,
	// sendmmsg.
	SyscallWrite Metric = "syscall_write"
	// SyscallFutex is time in futex: a Go thread parking or waking another.
	SyscallFutex Metric = "syscall_futex"
	// SyscallEpoll is time in epoll_wait, epoll_pwait, epoll_pwait2: the
	// netpoller waiting for the network.
	SyscallEpoll Metric = "syscall_epoll"
	// SyscallOther is time in every other system call.
	SyscallOther Metric = "syscall_other"
)

// Metrics lists the metrics in their BPF order.
var Metrics = [numMetrics]Metric{RunQueue, OffCPU, SyscallRead, SyscallWrite, SyscallFutex, SyscallEpoll, SyscallOther}

// histIndex is the key of role's metric m in the hists map.
func histIndex(role uint32, m int) uint32 { return role*numMetrics + uint32(m) }

// decodeHist decodes one struct hist.
func decodeHist(b []byte) (Histogram, error) {
	var h Histogram
	if len(b) != histSize {
		return h, fmt.Errorf("probe: histogram value is %d bytes, want %d", len(b), histSize)
	}
	for i := range h.Buckets {
		h.Buckets[i] = binary.NativeEndian.Uint64(b[i*8:])
	}
	h.Count = binary.NativeEndian.Uint64(b[NumBuckets*8:])
	h.Sum = binary.NativeEndian.Uint64(b[NumBuckets*8+8:])
	return h, nil
}

// decodePerCPUHist sums the CPUs' copies of one per-CPU struct hist.
func decodePerCPUHist(perCPU [][]byte) (Histogram, error) {
	var sum Histogram
	for cpu, b := range perCPU {
		h, err := decodeHist(b)
		if err != nil {
			return Histogram{}, fmt.Errorf("cpu %d: %w", cpu, err)
		}
		sum = sum.Add(h)
	}
	return sum, nil
}

// connKey is a decoded struct conn_key.
type connKey struct {
	local, remote netip.AddrPort
}

func decodeConnKey(b []byte) (connKey, error) {
	if len(b) != connKeySize {
		return connKey{}, fmt.Errorf("probe: connection key is %d bytes, want %d", len(b), connKeySize)
	}
	lport := binary.NativeEndian.Uint16(b[32:])
	rport := binary.NativeEndian.Uint16(b[34:])
	family := binary.NativeEndian.Uint16(b[36:])
	var la, ra netip.Addr
	switch family {
	case afInet:
		la = netip.AddrFrom4([4]byte(b[0:4]))
		ra = netip.AddrFrom4([4]byte(b[16:20]))
	case afInet6:
		// A dual-stack socket (Go's "tcp" on ":port") talking IPv4 has
		// v4-mapped addresses: unmapped, as net.Conn reports them.
		la = netip.AddrFrom16([16]byte(b[0:16])).Unmap()
		ra = netip.AddrFrom16([16]byte(b[16:32])).Unmap()
	default:
		return connKey{}, fmt.Errorf("probe: connection key has address family %d", family)
	}
	return connKey{netip.AddrPortFrom(la, lport), netip.AddrPortFrom(ra, rport)}, nil
}

// connVal is a decoded struct conn_val.
type connVal struct {
	srtt        Histogram
	retransmits uint64
	lastNS      uint64
	srttUS      uint32
	sndQueue    uint32
	rcvQueue    uint32
	sndCwnd     uint32
}

func decodeConnVal(b []byte) (connVal, error) {
	var v connVal
	if len(b) != connValSize {
		return v, fmt.Errorf("probe: connection value is %d bytes, want %d", len(b), connValSize)
	}
	h, err := decodeHist(b[:histSize])
	if err != nil {
		return v, err
	}
	v.srtt = h
	o := histSize
	v.retransmits = binary.NativeEndian.Uint64(b[o:])
	v.lastNS = binary.NativeEndian.Uint64(b[o+8:])
	v.srttUS = binary.NativeEndian.Uint32(b[o+16:])
	v.sndQueue = binary.NativeEndian.Uint32(b[o+20:])
	v.rcvQueue = binary.NativeEndian.Uint32(b[o+24:])
	v.sndCwnd = binary.NativeEndian.Uint32(b[o+28:])
	return v, nil
}

func putU32(b []byte, v uint32) { binary.NativeEndian.PutUint32(b, v) }
