package rdma

import (
	"errors"
	"fmt"
)

// The verbs this transport needs, and no more: a device with a protection
// domain, memory registration, and reliable-connected queue pairs with one
// completion queue each and a completion channel to sleep on. Two
// implementations: libibverbs through cgo (verbs_linux.go), and Emulation,
// which keeps RC semantics for tests on machines without RDMA hardware.

// Device is an opened verbs device.
type Device interface {
	// Name is the device's name ("mlx5_0", "emu0").
	Name() string
	// Attr describes the device and the port in use.
	Attr() DeviceAttr
	// NewDomain allocates a protection domain. Memory registered in it can
	// be reached only through QPs created in it: each connection has its
	// own, so that a peer guessing rkeys reaches no other connection's
	// memory.
	NewDomain() (Domain, error)
	Close() error
}

// Domain is a protection domain.
type Domain interface {
	// Register registers buf with the access given. The caller keeps buf
	// alive and unmoved until the MR is closed (Go heap memory does not
	// move; C memory must not be freed before).
	Register(buf []byte, access Access) (MR, error)
	// CreateQP creates an RC queue pair in the INIT state with its own
	// completion queue for sends and receives.
	CreateQP(cfg QPConfig) (QP, error)
	// Close frees the domain; its MRs and QPs must be closed first.
	Close() error
}

// Access is what a registration allows beyond local reads, as
// ibv_access_flags.
type Access uint8

// Access rights.
const (
	AccessLocalWrite  Access = 1     // the device writes it: receives, RDMA READ targets
	AccessRemoteWrite Access = 1 | 2 // peers RDMA-WRITE into it (needs local write)
)

// OpenOptions choose a device's port and GID (Open).
type OpenOptions struct {
	Port     int // 1 when 0
	GIDIndex int // from ChooseGID; OpenFor chooses it
}

// DeviceAttr is what the transport needs to know of a device and port.
type DeviceAttr struct {
	MaxInline int    // bytes a SEND may carry inline
	MaxMRSize uint64 // largest registration
	LID       uint16 // port's local identifier (InfiniBand); 0 on RoCE
	MTU       int    // active path MTU in bytes
	GID       [16]byte
	GIDIndex  int
}

// MR is a registered memory region.
type MR interface {
	// Addr is the region's address as the device sees it: a peer names
	// Addr()+offset with RKey in an RDMA WRITE.
	Addr() uint64
	Len() int
	LKey() uint32
	RKey() uint32
	// Bytes is the registered memory.
	Bytes() []byte
	// Close deregisters the region.
	Close() error
}

// QPConfig sizes a queue pair.
type QPConfig struct {
	SendDepth int // send work requests outstanding at once
	RecvDepth int // receive work requests posted at once
	MaxInline int // inline bytes per SEND; at most DeviceAttr.MaxInline
	// RNRRetry is how many times a SEND that finds no receive posted is
	// retried before the QP fails with StatusRNRRetryExceeded; 7 is
	// infinite, as in the InfiniBand specification.
	RNRRetry int
}

// Endpoint is what a peer needs to connect its QP to ours; exchanged over
// the TCP control connection.
type Endpoint struct {
	QPN uint32
	PSN uint32
	LID uint16
	MTU int
	GID [16]byte
}

// QP is a reliable-connected queue pair and its completion queue. PostSend,
// PostRecv and Poll may be called from different goroutines at once; Wait
// from one.
type QP interface {
	Num() uint32
	// Connect moves the QP through INIT, RTR and RTS to talk to remote,
	// sending with our PSN psn from our GID gidIndex (negative: the one
	// the device was opened with).
	Connect(psn uint32, gidIndex int, remote Endpoint) error
	PostRecv(wr RecvWR) error
	PostSend(wr SendWR) error
	// Poll takes up to len(wc) completions without waiting.
	Poll(wc []Completion) (int, error)
	// Arm asks for one wakeup of Wait at the next completion. Poll again
	// after Arm: a completion that came in between does not wake Wait.
	Arm() error
	// Wait sleeps until a completion arrives after Arm, or the QP is
	// closed (ErrQPClosed).
	Wait() error
	State() QPState
	// Close destroys the QP; work outstanding is flushed and Wait returns.
	Close() error
}

// SGE names bytes of a registered region.
type SGE struct {
	MR  MR
	Off int
	Len int
}

// Remote names bytes of a peer's registered region.
type Remote struct {
	Addr uint64
	RKey uint32
}

// Opcode is a work request's operation.
type Opcode uint8

// Opcodes.
const (
	OpSend Opcode = iota + 1
	OpWrite
	OpRecv
)

func (o Opcode) String() string {
	switch o {
	case OpSend:
		return "SEND"
	case OpWrite:
		return "RDMA WRITE"
	case OpRecv:
		return "RECV"
	}
	return fmt.Sprintf("opcode(%d)", uint8(o))
}

// SendWR is a send-queue work request: a SEND, or an RDMA WRITE of Local
// to Remote.
type SendWR struct {
	ID     uint64
	Op     Opcode
	Local  SGE
	Remote Remote // OpWrite only
	Inline bool   // copy Local at post time; Local.Len <= QPConfig.MaxInline
}

// RecvWR posts a receive buffer.
type RecvWR struct {
	ID    uint64
	Local SGE
}

// Completion is one work completion.
type Completion struct {
	ID     uint64
	Op     Opcode
	Status Status
	Len    int // bytes received (OpRecv)
}

// Status is a work completion's status, numbered as ibv_wc_status.
type Status uint8

// Statuses the transport tells apart.
const (
	StatusSuccess          Status = 0
	StatusLocalLength      Status = 1
	StatusLocalProtection  Status = 4
	StatusFlushed          Status = 5
	StatusRemoteInvalidReq Status = 9
	StatusRemoteAccess     Status = 10
	StatusRetryExceeded    Status = 12
	StatusRNRRetryExceeded Status = 13
)

func (s Status) String() string {
	switch s {
	case StatusSuccess:
		return "success"
	case StatusLocalLength:
		return "local length error"
	case StatusLocalProtection:
		return "local protection error"
	case StatusFlushed:
		return "work request flushed"
	case StatusRemoteInvalidReq:
		return "remote invalid request"
	case StatusRemoteAccess:
		return "remote access error (bad rkey or range)"
	case StatusRetryExceeded:
		return "transport retry counter exceeded (peer gone)"
	case StatusRNRRetryExceeded:
		return "receiver not ready retry exceeded (no receive posted)"
	}
	return fmt.Sprintf("status %d", uint8(s))
}

// QPState is a queue pair's state.
type QPState uint8

// States, numbered as ibv_qp_state.
const (
	StateReset QPState = 0
	StateInit  QPState = 1
	StateRTR   QPState = 2
	StateRTS   QPState = 3
	StateError QPState = 6
)

func (s QPState) String() string {
	switch s {
	case StateReset:
		return "RESET"
	case StateInit:
		return "INIT"
	case StateRTR:
		return "RTR"
	case StateRTS:
		return "RTS"
	case StateError:
		return "ERROR"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

var (
	// ErrUnavailable wraps every reason this host cannot use RDMA: no
	// library, no devices, another platform.
	ErrUnavailable = errors.New("rdma: unavailable")
	// ErrNoDevices is returned when libibverbs loads but finds no device.
	ErrNoDevices = fmt.Errorf("%w: no RDMA devices", ErrUnavailable)
	// ErrQPClosed is returned by Wait and posts on a closed QP.
	ErrQPClosed = errors.New("rdma: queue pair closed")
	// ErrQPState is returned by a post on a QP not in a state to take it.
	ErrQPState = errors.New("rdma: queue pair not ready")
	// ErrRegister is returned when memory cannot be registered (memlock
	// limit, bad range); the transport falls back to staging.
	ErrRegister = errors.New("rdma: memory registration failed")
)

// WCError is a failed work completion.
type WCError struct {
	Op     Opcode
	Status Status
}

func (e *WCError) Error() string {
	return fmt.Sprintf("rdma: %v failed: %v", e.Op, e.Status)
}
