package engine

import (
	"github.com/gpufabric/gpufabric/engine/api"
)

// AttachRequest is what an Authorize hook is asked to back: a session's
// Attach, with the credential its Hello carried.
type AttachRequest struct {
	Session    uint64
	Client     string // who the client said it is
	Credential string // the Hello's token field
	// Device is the server device asked for; -1 lets the hook choose.
	Device int
	// Held are the server devices the session holds already.
	Held []int
}

// Grant is what an Authorize hook allows: one device, at most Bytes of
// it (0: no bound past the device's own), under Key, until Release, which
// the engine calls once when the session lets the device go (its end).
type Grant struct {
	Device  int
	Bytes   uint64
	Key     string
	Release func()
}

// Authorizer decides whether a session may attach a device; a server in a
// pool sets one that checks the capability of a reservation. An error
// refuses the Attach and is the client's to read: say why.
type Authorizer func(AttachRequest) (Grant, error)

// authorize runs the hook for an Attach, if the server has one, and
// resolves the device it names. ok false: refused, the client answered.
func (s *session) authorize(h api.Header, m *api.Attach) (g Grant, ok bool) {
	hook := s.srv.cfg.Authorize
	if hook == nil {
		return Grant{Device: int(m.Device)}, true
	}
	s.mu.Lock()
	req := AttachRequest{Session: s.id, Client: s.client, Credential: s.credential, Device: int(m.Device)}
	for _, d := range s.devices {
		req.Held = append(req.Held, d.shard.index)
	}
	s.mu.Unlock()
	g, err := hook(req)
	if err != nil {
		s.log.Warn("attach refused", "err", err)
		s.fail(h, api.Errorf(api.ErrNotPermitted, "attach refused: %v", err))
		return g, false
	}
	if m.Device >= 0 && g.Device != int(m.Device) {
		s.releaseGrant(g)
		s.fail(h, api.Errorf(api.ErrNotPermitted, "attach refused: the credential backs device %d, not %d", g.Device, m.Device))
		return g, false
	}
	if g.Device < 0 || g.Device >= len(s.srv.shards) {
		s.releaseGrant(g)
		s.fail(h, api.Errorf(api.ErrInvalidDevice, "the credential names device %d; the server has %d", g.Device, len(s.srv.shards)))
		return g, false
	}
	return g, true
}

func (s *session) releaseGrant(g Grant) {
	if g.Release != nil {
		g.Release()
	}
}

// Revoke ends every session that attached a device under a grant of key
// (a reservation released, expired or lost): each is cut, its client's
// next call fails, and its memory is freed. It returns how many it ended.
func (s *Server) Revoke(key string, reason error) int {
	s.mu.Lock()
	var cut []*session
	for _, sess := range s.sessions {
		sess.mu.Lock()
		for _, d := range sess.devices {
			if d.grant == key {
				cut = append(cut, sess)
				break
			}
		}
		sess.mu.Unlock()
	}
	s.mu.Unlock()
	for _, sess := range cut {
		sess.log.Warn("session ended: its grant was revoked", "grant", key, "reason", reason)
		sess.cut(reason)
	}
	return len(cut)
}
