package interpose

import "errors"

// hostPinner is implemented by transports that can keep host memory ready
// for transfers without work per transfer (rdma.Conn: registered once).
type hostPinner interface {
	Pin(b []byte) error
	Forget(b []byte)
}

// PinHost readies b, host memory the application pinned (cuMemAllocHost,
// cuMemHostAlloc, cuMemHostRegister), for copies from and into it on the
// session's connections that can keep it ready: over RDMA, registered
// once rather than per copy. UnpinHost must be called before b is freed.
// Connections that cannot do better than copying b ignore it.
func (s *Session) PinHost(b []byte) error {
	var errs []error
	for _, c := range []any{s.conn, s.bulk} {
		if p, ok := c.(hostPinner); ok {
			errs = append(errs, p.Pin(b))
		}
	}
	return errors.Join(errs...)
}

// UnpinHost forgets b before it is freed; see PinHost.
func (s *Session) UnpinHost(b []byte) {
	for _, c := range []any{s.conn, s.bulk} {
		if p, ok := c.(hostPinner); ok {
			p.Forget(b)
		}
	}
}
