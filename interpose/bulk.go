package interpose

import (
	"context"
	"fmt"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/rdma"
	"github.com/gpufabric/gpufabric/transport/shm"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// The bulk lane (see engine/bulk.go for the server's side): when the
// transport with the highest bandwidth is not the one with the lowest
// latency, and moves a quarter more, a second connection joins the session and carries the payloads
// of large copies, while every call, and so the order of calls, stays on
// the session's connection.

// joinBulk dials endpoint over transport tr and joins the connection to the
// session as its bulk lane. It must run before the session is handed out.
func (s *Session) joinBulk(ctx context.Context, tr, endpoint string) error {
	var conn transport.Conn
	var err error
	switch tr {
	case tcp.Name:
		conn, err = s.opts.dialTCP(ctx, endpoint)
	case shm.Name:
		conn, err = s.opts.dialShm(ctx, endpoint)
	case rdma.Name:
		conn, err = s.opts.dialRDMA(ctx, endpoint)
	default:
		err = fmt.Errorf("%w %q", ErrUnknownTransport, tr)
	}
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	body := api.AppendRequest(nil, 1, 0, &api.JoinBulk{Session: s.hello.Session, Key: s.hello.BulkKey})
	if err := transport.SendNow(conn, body, nil); err != nil {
		conn.Close()
		return err
	}
	if err := joinAnswer(conn); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	s.bulk = conn
	return nil
}

// joinAnswer reads the server's answer to JoinBulk.
func joinAnswer(conn transport.Conn) error {
	body, _, err := conn.Recv()
	if err != nil {
		return err
	}
	h, fields, err := api.ReadHeader(body)
	if err != nil {
		return err
	}
	if h.Op != api.OpJoinBulk || h.Flags&api.FlagReply == 0 {
		return fmt.Errorf("server answered JoinBulk with %v", h.Op)
	}
	callErr, err := api.DecodeReply(fields, nil)
	if err != nil {
		return err
	}
	return callErr
}

// writeBulk sends request seq (body, marked FlagBulkPayload) with its
// payload on the bulk lane: the request on the session's connection, and the payload as the next
// bulk frame. Both are sent under bulkSend, so bulk frames go out in the
// order of the requests that announce them.
func (s *Session) writeBulk(body []byte, seq uint32, req api.Message, payload []byte) error {
	var hdr [api.HeaderSize]byte
	s.bulkSend.Lock()
	defer s.bulkSend.Unlock()
	if err := s.conn.Send(body, nil); err != nil {
		return err
	}
	return s.bulk.Send(api.AppendBulk(hdr[:0], api.Header{Op: req.Op(), Seq: seq}), payload)
}

// bulkReply takes the bulk frame that carries the payload of reply h,
// which itself carried inLine bytes (none are allowed), and returns where
// to read the payload and its length. An error means the lanes are out of
// step, or the bulk lane is gone: the session is over.
func (s *Session) bulkReply(h api.Header, inLine int) (transport.Conn, int, error) {
	if s.bulk == nil {
		return nil, 0, fmt.Errorf("%v reply #%d is marked for a bulk lane the session does not have", h.Op, h.Seq)
	}
	if inLine != 0 {
		return nil, 0, fmt.Errorf("%v reply #%d is marked for the bulk lane and carries %d payload bytes itself", h.Op, h.Seq, inLine)
	}
	body, n, err := s.bulk.Recv()
	if err != nil {
		return nil, 0, fmt.Errorf("bulk lane: %w", err)
	}
	if err := api.CheckBulk(body, h); err != nil {
		return nil, 0, err
	}
	return s.bulk, n, nil
}
