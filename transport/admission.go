package transport

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// ErrBusy is why an Admission closed a peer at once: as many handshakes as
// it runs at the most were in progress or waiting for Accept.
var ErrBusy = errors.New("transport: too many handshakes in progress")

// Admission is the accept side of a listener whose connections need a
// handshake before they are served (shared memory's credentials and region,
// TLS): a goroutine of its own accepts peers, and each peer's handshake
// runs on a goroutine of its own, at most max at once, so that a slow or
// hostile peer delays no other and no peer's failure reaches Accept.
type Admission struct {
	accept    func() (net.Conn, error)
	handshake func(net.Conn) (Conn, error)
	reject    func(net.Conn, error)

	ready    chan Conn     // handshaken, waiting for Accept
	errs     chan error    // the listener's own accept errors, for Accept
	slots    chan struct{} // one per handshake in progress or waiting for Accept
	done     chan struct{} // closed by Close
	rejected atomic.Uint64
	wg       sync.WaitGroup

	mu      sync.Mutex
	pending map[net.Conn]struct{} // handshakes in progress, closed by Close
	closed  bool
}

// NewAdmission starts accepting with accept (a listener's raw Accept) and
// running handshake on each peer, at most max at once. handshake sets its
// own deadlines; a connection it fails is closed. reject, when not nil,
// hears of each peer turned away (ErrBusy, or its handshake's error),
// while the peer's connection is still open to be described; it may be
// called from several goroutines at once.
func NewAdmission(accept func() (net.Conn, error), max int, handshake func(net.Conn) (Conn, error), reject func(net.Conn, error)) *Admission {
	a := &Admission{
		accept:    accept,
		handshake: handshake,
		reject:    reject,
		ready:     make(chan Conn),
		errs:      make(chan error),
		slots:     make(chan struct{}, max),
		done:      make(chan struct{}),
		pending:   make(map[net.Conn]struct{}),
	}
	a.wg.Add(1)
	go a.loop()
	return a
}

// Accept waits for the next handshaken connection. It fails only when the
// Admission is closed (errors.Is(err, net.ErrClosed)) or accepting failed
// at the listener, not because of a peer: out of file descriptors or
// kernel memory. Then back off and call Accept again.
func (a *Admission) Accept() (Conn, error) {
	select {
	case c := <-a.ready:
		return c, nil
	case err := <-a.errs:
		return nil, err
	case <-a.done:
		return nil, net.ErrClosed
	}
}

// Close aborts the handshakes in progress, closes the listener with
// closeListener, and waits for the Admission's goroutines. Connections
// already accepted stay open.
func (a *Admission) Close(closeListener func() error) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	close(a.done)
	for c := range a.pending {
		c.Close()
	}
	a.mu.Unlock()
	err := closeListener()
	a.wg.Wait()
	return err
}

// Rejected is the number of peers turned away or whose handshake failed.
func (a *Admission) Rejected() uint64 { return a.rejected.Load() }

// loop accepts peers and starts their handshakes. An accept error is the
// listener's (Go retries ECONNABORTED, a peer gone before it was accepted,
// itself): it waits for an Accept to take it, so the loop goes no faster
// than its caller retries.
func (a *Admission) loop() {
	defer a.wg.Done()
	for {
		c, err := a.accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case a.errs <- err:
				continue
			case <-a.done:
				return
			}
		}
		select {
		case a.slots <- struct{}{}:
		default:
			a.turnAway(c, ErrBusy)
			c.Close()
			continue
		}
		if !a.track(c) {
			c.Close()
			<-a.slots
			return
		}
		a.wg.Add(1)
		go a.serve(c)
	}
}

// serve runs one peer's handshake and hands its connection to Accept.
func (a *Admission) serve(c net.Conn) {
	defer a.wg.Done()
	conn, err := a.handshake(c)
	a.untrack(c)
	if err != nil {
		<-a.slots // free before telling: whoever hears of it may connect again
		select {
		case <-a.done:
			// Aborted by Close: not the peer's doing.
		default:
			a.turnAway(c, err)
		}
		c.Close()
		return
	}
	// The slot is held until Accept takes the connection: connections
	// waiting for Accept count against max too.
	select {
	case a.ready <- conn:
	case <-a.done:
		conn.Close()
	}
	<-a.slots
}

func (a *Admission) turnAway(c net.Conn, err error) {
	a.rejected.Add(1)
	if a.reject != nil {
		a.reject(c, err)
	}
}

// track records c as a handshake in progress, unless the Admission is
// closed; untrack forgets it.
func (a *Admission) track(c net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.pending[c] = struct{}{}
	return true
}

func (a *Admission) untrack(c net.Conn) {
	a.mu.Lock()
	delete(a.pending, c)
	a.mu.Unlock()
}
