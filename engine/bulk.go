package engine

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/transport"
)

// The bulk lane: a second connection of a session's client, on the
// transport that measured the highest bandwidth, joined to the session with
// JoinBulk. Frames marked FlagBulkPayload on the session's connection have
// their payloads there instead, as the next bulk frame, each side sending
// its bulk frames in the order of the frames that announce them. Calls stay
// on the session's connection, so their order is the connection's; the
// bulk lane only carries bytes.

var (
	// errJoined ends the reader of a connection that became another
	// session's bulk lane: it must neither close the connection nor free
	// anything.
	errJoined = errors.New("joined another session as its bulk lane")
	// errNoBulkLane answers a frame marked for the bulk lane in a session
	// that has none.
	errNoBulkLane = errors.New("the frame's payload is on the bulk lane, and the session has none")
	// errBadJoin refuses a JoinBulk that names no session, or not with its key.
	errBadJoin = api.Errorf(api.ErrNotPermitted, "no such session, or a bad bulk lane key")
)

// newBulkKey is a session's secret for JoinBulk: 128 random bits.
func newBulkKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// joinBulk makes the connection of shell, whose first call is m, the bulk
// lane of the session m names. On success the shell's reader must stop
// (errJoined); on failure the shell ends with its connection and the
// session m names is untouched.
func (srv *Server) joinBulk(shell *session, h api.Header, m *api.JoinBulk) error {
	srv.mu.Lock()
	target := srv.sessions[m.Session]
	srv.mu.Unlock()
	// An unknown session and a wrong key get the same answer, so that a
	// peer that has not authenticated cannot probe for sessions.
	err := errBadJoin
	if target != nil && target != shell {
		err = target.adoptBulk(shell.conn, m.Key)
	}
	// The shell's own reader answers on its own connection, which nothing
	// else writes to; adopted before the answer: once the client has it, it
	// may send.
	_ = transport.SendNow(shell.conn, shell.encodeReply(h, err, nil), nil)
	if err != nil {
		return fmt.Errorf("join session %d as its bulk lane: %w", m.Session, err)
	}
	return errJoined
}

// adoptBulk makes c the session's bulk lane if key is the session's.
func (s *session) adoptBulk(c transport.Conn, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.bulkKey == "" || subtle.ConstantTimeCompare([]byte(key), []byte(s.bulkKey)) != 1:
		return errBadJoin
	case s.ended:
		return api.Errorf(api.ErrIllegalState, "the session is ending")
	case s.bulk != nil:
		return api.Errorf(api.ErrIllegalState, "the session has a bulk lane already")
	}
	s.bulk = c
	info := c.Info()
	s.log.Info("bulk lane joined", "bulk_transport", info.Transport, "bulk_remote", info.Remote)
	return nil
}

func (s *session) bulkConn() transport.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bulk
}

// bulkPayload takes the bulk frame that carries the payload of request h,
// whose own frame carried inLine bytes (none are allowed). An error other
// than errNoBulkLane means the lanes are out of step: the session must end.
func (s *session) bulkPayload(h api.Header, inLine int) (payload, error) {
	bulk := s.bulkConn()
	if bulk == nil {
		return payload{}, errNoBulkLane
	}
	if inLine != 0 {
		return payload{}, fmt.Errorf("%v #%d is marked for the bulk lane and carries %d payload bytes itself", h.Op, h.Seq, inLine)
	}
	body, n, err := bulk.Recv()
	if err != nil {
		return payload{}, fmt.Errorf("bulk lane: %w", err)
	}
	if err := api.CheckBulk(body, h); err != nil {
		return payload{}, err
	}
	return payload{from: bulk, n: n}, nil
}

// replyBulk answers h on the session's connection and sends the payload on
// the bulk lane, both as the outbox's writer, so that bulk frames leave in
// the order of the replies that announce them. It runs on the session's own
// goroutines (a stream's worker, the reader), which may wait on its client.
func (s *session) replyBulk(h api.Header, m api.Message, data []byte, bulk transport.Conn) {
	e := replyEncoders.Get().(*api.Encoder)
	defer replyEncoders.Put(e)
	e.Reset()
	e.Reply(h.Op, h.Seq, api.FlagBulkPayload, nil, m)
	var hdr [api.HeaderSize]byte
	// A send fails only when a connection is going; the reader sees that.
	_ = s.out.sendWaiting(func() error {
		if err := transport.SendNow(s.conn, e.Bytes(), nil); err != nil {
			return err
		}
		return bulk.Send(api.AppendBulk(hdr[:0], api.Header{Op: h.Op, Flags: api.FlagReply, Seq: h.Seq}), data)
	})
}
