//go:build linux

package shm

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

// until polls cond until it holds, failing the test after prompt.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(prompt)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, prompt)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestExpectIn: a receive told when its record is due sleeps toward that
// time, is woken by a record that comes early, polls for one that comes
// on time, falls back to an ordinary sleep for one that comes late, and
// is woken by Close; in every case it gets the record, intact.
func TestExpectIn(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   time.Duration
		// send is when the peer sends, once the receive has started; it
		// returns false to close the receiving end instead.
		send func(t *testing.T, c *Conn, due time.Duration) bool
		// the receive's counters afterwards: whether it slept toward the
		// due time, and whether it then slept as usual (nil: not checked).
		dueSleep, plainSleep *bool
	}{
		{
			name: "early", in: time.Hour,
			send: func(t *testing.T, c *Conn, _ time.Duration) bool {
				until(t, "the receive sleeps toward its due time", func() bool { return c.dueSleeps.Load() > 0 })
				return true
			},
			dueSleep: ptr(true), // and it returns long before its hour
		},
		{
			name: "on time", in: 50 * time.Millisecond,
			send: func(t *testing.T, c *Conn, due time.Duration) bool {
				until(t, "the receive sleeps toward its due time", func() bool { return c.dueSleeps.Load() > 0 })
				until(t, "the due time comes", func() bool { return clock() >= due-dueMargin/2 })
				return true
			},
			dueSleep: ptr(true),
		},
		{
			name: "late", in: time.Millisecond,
			send: func(t *testing.T, c *Conn, _ time.Duration) bool {
				until(t, "the receive gives up polling and sleeps", func() bool { return c.recvSleeps.Load() > 0 })
				return true
			},
			plainSleep: ptr(true),
		},
		{
			name: "closed", in: time.Hour,
			send: func(t *testing.T, c *Conn, _ time.Duration) bool {
				until(t, "the receive sleeps toward its due time", func() bool { return c.dueSleeps.Load() > 0 })
				return false
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := pair(t, Options{})
			payload := pattern(3<<20, 7) // through the slab: a frame record, then chunk records
			due := clock() + tc.in
			c.ExpectIn(tc.in)
			type res struct {
				body, payload []byte
				err           error
			}
			done := make(chan res, 1)
			go func() {
				body, p, err := recvFrame(c)
				done <- res{body, p, err}
			}()
			if !tc.send(t, c, due) {
				c.Close()
				select {
				case r := <-done:
					if !errors.Is(r.err, transport.ErrClosed) {
						t.Fatalf("Recv after Close: %v, want %v", r.err, transport.ErrClosed)
					}
				case <-time.After(prompt):
					t.Fatal("Close did not wake a receive sleeping toward its due time")
				}
				return
			}
			if err := s.Send([]byte("reply"), payload); err != nil {
				t.Fatal(err)
			}
			var r res
			select {
			case r = <-done:
			case <-time.After(prompt):
				t.Fatal("the record did not wake the receive")
			}
			if r.err != nil || string(r.body) != "reply" || string(r.payload) != string(payload) {
				t.Fatalf("got %q, %d payload bytes (intact %v), %v", r.body, len(r.payload), string(r.payload) == string(payload), r.err)
			}
			if tc.dueSleep != nil && (c.dueSleeps.Load() > 0) != *tc.dueSleep {
				t.Errorf("slept toward the due time %d times, want any: %v", c.dueSleeps.Load(), *tc.dueSleep)
			}
			if tc.plainSleep != nil && (c.recvSleeps.Load() > 0) != *tc.plainSleep {
				t.Errorf("slept as usual %d times, want any: %v", c.recvSleeps.Load(), *tc.plainSleep)
			}
			if c.due.Load() != 0 {
				t.Error("the hint outlived the wait it was for")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestExpectInNoHint: without a hint, or with one for a time already
// passed, a receive never sleeps toward a due time.
func TestExpectInNoHint(t *testing.T) {
	c, s := pair(t, Options{})
	c.ExpectIn(0)
	c.ExpectIn(-time.Second)
	if c.due.Load() != 0 {
		t.Fatal("a hint of no time in the future was kept")
	}
	done := recvErr(c)
	until(t, "the receive sleeps", func() bool { return c.recvSleeps.Load() > 0 })
	if n := c.dueSleeps.Load(); n != 0 {
		t.Fatalf("slept toward a due time %d times without a hint", n)
	}
	s.Close()
	waitErr(t, "Recv after the peer closed", done, transport.ErrClosed, io.EOF)
}

// TestSoon: a server's Soon wakes the client's sleeping receive, which
// polls for the record instead of sleeping again; a client's Soon leaves
// the server's receive asleep, so a client cannot make the server poll.
func TestSoon(t *testing.T) {
	c, s := pair(t, Options{})
	done := make(chan error, 1)
	go func() {
		body, _, err := recvFrame(c)
		if err == nil && string(body) != "reply" {
			err = errors.New("wrong frame: " + string(body))
		}
		done <- err
	}()
	until(t, "the client's receive sleeps", func() bool { return c.recvSleeps.Load() > 0 })
	s.Soon()
	until(t, "the client's receive polls", func() bool { return c.soonPolls.Load() > 0 })
	if err := s.Send([]byte("reply"), nil); err != nil {
		t.Fatal(err)
	}
	waitErr(t, "Recv after Soon", done, nil)

	serverDone := recvErr(s)
	until(t, "the server's receive sleeps", func() bool { return s.recvSleeps.Load() > 0 })
	c.Soon()
	until(t, "the server's receive sleeps again", func() bool { return s.recvSleeps.Load() > 1 })
	if n := s.soonPolls.Load(); n != 0 {
		t.Fatalf("a client's Soon made the server poll %d times", n)
	}
	c.Close()
	waitErr(t, "the server's Recv after the client closed", serverDone, io.EOF, transport.ErrClosed)
	s.Soon() // on a connection whose peer is gone: nothing to wake, no failure
}
