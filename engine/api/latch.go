package api

import "sync"

// Latch keeps the first failure of asynchronous calls until a synchronising
// call takes it: the rule both sides follow for calls that get no reply.
// The zero value is ready; it is safe for concurrent use.
type Latch struct {
	mu  sync.Mutex
	err error
}

// Set keeps err if no failure is kept yet; nil is ignored.
func (l *Latch) Set(err error) {
	if err == nil {
		return
	}
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

// Take returns the kept failure, if any, and forgets it.
func (l *Latch) Take() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.err
	l.err = nil
	return err
}
