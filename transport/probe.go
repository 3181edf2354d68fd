package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// Measurement primitives for choosing a transport: at connect time each
// candidate is pinged and streamed over, against a peer running Echo or
// Sink. They speak only the Conn contract, so they measure any transport.
//
// Probe frames have a 17-byte body: the magic "gfprobe1", a kind byte and
// a u64 sequence number. Echo returns every frame; Sink returns only pings
// and syncs, without their payloads.

// Stats summarises a set of duration samples.
type Stats struct {
	Samples             int
	P50, P90, P99, P999 time.Duration
	Mean                time.Duration
	Min, Max            time.Duration
}

func (s Stats) String() string {
	return fmt.Sprintf("n=%d min=%v p50=%v p90=%v p99=%v p99.9=%v max=%v mean=%v",
		s.Samples, s.Min, s.P50, s.P90, s.P99, s.P999, s.Max, s.Mean)
}

// Percentiles summarises samples by the nearest-rank method: Pq is the
// smallest sample not below q of them. samples is not modified. No samples
// give the zero Stats.
func Percentiles(samples []time.Duration) Stats {
	n := len(samples)
	if n == 0 {
		return Stats{}
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	rank := func(num, den int) time.Duration {
		// ceil(n*num/den) - 1, in integers.
		return sorted[max((n*num+den-1)/den-1, 0)]
	}
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	return Stats{
		Samples: n,
		P50:     rank(50, 100),
		P90:     rank(90, 100),
		P99:     rank(99, 100),
		P999:    rank(999, 1000),
		Mean:    sum / time.Duration(n),
		Min:     sorted[0],
		Max:     sorted[n-1],
	}
}

const (
	probeMagic    = "gfprobe1"
	probeBodySize = len(probeMagic) + 1 + 8

	probePing = 1 // wants a reply
	probeData = 2 // bulk, no reply from Sink
	probeSync = 3 // wants a reply; marks the end of a stream

	// pingWarmup round trips precede the measured ones: the first calls
	// pay for cold caches, page faults and the peer's goroutine waking.
	pingWarmup = 8
)

func probeBody(buf []byte, kind byte, seq uint64) []byte {
	buf = append(buf[:0], probeMagic...)
	buf = append(buf, kind)
	return binary.LittleEndian.AppendUint64(buf, seq)
}

// parseProbe returns a probe body's kind and sequence number; ok is false
// for frames that are not probes.
func parseProbe(body []byte) (kind byte, seq uint64, ok bool) {
	if len(body) != probeBodySize || string(body[:len(probeMagic)]) != probeMagic {
		return 0, 0, false
	}
	return body[len(probeMagic)], binary.LittleEndian.Uint64(body[len(probeMagic)+1:]), true
}

// closedErr reports whether err is how a connection ends.
func closedErr(err error) bool {
	return errors.Is(err, ErrClosed) || errors.Is(err, io.EOF)
}

// Echo sends every frame it receives back, body and payload, until the
// connection closes (nil) or fails (the error).
func Echo(conn Conn) error {
	var payload []byte
	for {
		body, n, err := conn.Recv()
		if err != nil {
			if closedErr(err) {
				return nil
			}
			return err
		}
		payload = slices.Grow(payload[:0], n)[:n]
		if err := conn.ReadPayload(payload); err != nil {
			return err
		}
		if err := conn.Send(body, payload); err != nil {
			if closedErr(err) {
				return nil
			}
			return err
		}
	}
}

// Sink receives frames until the connection closes (nil) or fails (the
// error), discarding payloads; it answers probe pings and syncs with their
// body alone, so a stream measured against it flows one way.
func Sink(conn Conn) error {
	for {
		body, _, err := conn.Recv() // an unread payload is discarded by the next Recv
		if err != nil {
			if closedErr(err) {
				return nil
			}
			return err
		}
		if kind, _, ok := parseProbe(body); ok && (kind == probePing || kind == probeSync) {
			if err := conn.Send(body, nil); err != nil {
				if closedErr(err) {
					return nil
				}
				return err
			}
		}
	}
}

// PingPong measures n round trips of a probe frame carrying a payload of
// the given size against a peer running Echo or Sink, after a few
// unmeasured warm-up rounds. The connection must carry nothing else
// meanwhile.
func PingPong(conn Conn, n int, payload int) (Stats, error) {
	if n <= 0 || payload < 0 {
		return Stats{}, fmt.Errorf("transport: PingPong of %d rounds with a %d-byte payload", n, payload)
	}
	out := make([]byte, payload)
	var in []byte
	body := make([]byte, 0, probeBodySize)
	samples := make([]time.Duration, 0, n)
	for i := range pingWarmup + n {
		seq := uint64(i)
		body = probeBody(body, probePing, seq)
		start := time.Now()
		if err := conn.Send(body, out); err != nil {
			return Stats{}, err
		}
		rbody, rn, err := conn.Recv()
		if err != nil {
			return Stats{}, err
		}
		kind, rseq, ok := parseProbe(rbody)
		in = slices.Grow(in[:0], rn)[:rn]
		if err := conn.ReadPayload(in); err != nil {
			return Stats{}, err
		}
		elapsed := time.Since(start)
		if !ok || kind != probePing || rseq != seq {
			return Stats{}, fmt.Errorf("transport: PingPong: reply %d is not the echo of ping %d", rseq, seq)
		}
		if i >= pingWarmup {
			samples = append(samples, elapsed)
		}
	}
	return Percentiles(samples), nil
}

// Bandwidth streams total bytes (rounded up to whole frames) in frames
// with size-byte payloads, then a sync frame, and returns the payload bytes
// sent per second until the sync's reply arrived. Against Sink the stream
// flows one way; against Echo it comes back too, as a full-duplex stream
// (a goroutine reads the returning frames meanwhile). On an error the
// connection is in an unknown state: close it.
func Bandwidth(conn Conn, size int, total int) (bytesPerSec float64, err error) {
	if size <= 0 || total <= 0 {
		return 0, fmt.Errorf("transport: Bandwidth of %d bytes in %d-byte frames", total, size)
	}
	frames := (total + size - 1) / size
	const syncSeq = 1<<64 - 1
	payload := make([]byte, size)

	done := make(chan error, 1)
	var end time.Time
	go func() {
		var buf []byte
		for {
			body, n, err := conn.Recv()
			if err != nil {
				done <- err
				return
			}
			kind, seq, ok := parseProbe(body)
			if ok && kind == probeSync && seq == syncSeq {
				end = time.Now()
				done <- conn.ReadPayload(nil)
				return
			}
			buf = slices.Grow(buf[:0], n)[:n]
			if err := conn.ReadPayload(buf); err != nil {
				done <- err
				return
			}
		}
	}()

	body := make([]byte, 0, probeBodySize)
	start := time.Now()
	for i := range frames {
		if err := conn.Send(probeBody(body, probeData, uint64(i)), payload); err != nil {
			return 0, err
		}
	}
	if err := conn.Send(probeBody(body, probeSync, syncSeq), nil); err != nil {
		return 0, err
	}
	if err := <-done; err != nil {
		return 0, err
	}
	return float64(frames) * float64(size) / end.Sub(start).Seconds(), nil
}
