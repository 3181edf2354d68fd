//go:build linux

package shm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

// rejection is one call of Options.OnReject.
type rejection struct {
	peer string
	err  error
}

// listen starts a listener whose rejections arrive on the returned channel.
func listen(t *testing.T, opts Options) (*Listener, <-chan rejection) {
	t.Helper()
	rejects := make(chan rejection, 1000)
	opts.OnReject = func(peer string, err error) { rejects <- rejection{peer, err} }
	l, err := Listen(testPath(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, rejects
}

// waitReject waits for a rejection matching want (an error to match with
// errors.Is, or a string the error contains).
func waitReject(t *testing.T, rejects <-chan rejection, want any) rejection {
	t.Helper()
	timeout := time.After(prompt)
	for {
		select {
		case r := <-rejects:
			switch w := want.(type) {
			case error:
				if errors.Is(r.err, w) {
					return r
				}
			case string:
				if strings.Contains(r.err.Error(), w) {
					return r
				}
			}
			t.Logf("other rejection: %s: %v", r.peer, r.err)
		case <-timeout:
			t.Fatalf("no rejection matching %v within %v", want, prompt)
		}
	}
}

// bystander checks that a well-behaved client still connects and talks.
func bystander(t *testing.T, l *Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), prompt)
	defer cancel()
	type res struct {
		c   transport.Conn
		err error
	}
	accepted := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		accepted <- res{c, err}
	}()
	c, err := Dial(ctx, l.Addr(), Options{})
	if err != nil {
		t.Fatalf("bystander: Dial: %v", err)
	}
	defer c.Close()
	r := <-accepted
	if r.err != nil {
		t.Fatalf("bystander: Accept: %v", r.err)
	}
	s := r.c
	defer s.Close()
	if err := c.Send([]byte("hello"), nil); err != nil {
		t.Fatalf("bystander: Send: %v", err)
	}
	if body, _, err := recvFrame(s); err != nil || string(body) != "hello" {
		t.Fatalf("bystander: Recv: %q, %v", body, err)
	}
}

// rawPeer connects to l without the protocol.
func rawPeer(t *testing.T, l *Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func rawPreamble(magic uint64, version, tokenLen uint32) []byte {
	b := binary.LittleEndian.AppendUint64(nil, magic)
	b = binary.LittleEndian.AppendUint32(b, version)
	return binary.LittleEndian.AppendUint32(b, tokenLen)
}

// TestListenerSurvivesPeers: whatever one peer does, it is turned away
// and reported, Accept does not fail, and a bystander connects.
func TestListenerSurvivesPeers(t *testing.T) {
	cases := []struct {
		name string
		peer func(net.Conn)
		want any
	}{
		{"connect and close", func(c net.Conn) { c.Close() }, io.EOF},
		{"half a preamble", func(c net.Conn) { c.Write(make([]byte, 5)); c.Close() }, io.ErrUnexpectedEOF},
		{"silent", func(net.Conn) {}, os.ErrDeadlineExceeded},
		{"not our protocol", func(c net.Conn) { c.Write([]byte("GET / HTTP/1.1\r\n\r\n")) }, "not a gpufabric shm client"},
		{"old version", func(c net.Conn) { c.Write(rawPreamble(preambleMagic, 2, 0)) }, "version 2"},
		{"token too long", func(c net.Conn) { c.Write(rawPreamble(preambleMagic, handshakeVersion, MaxTokenLen+1)) }, "token of"},
		{"token cut short", func(c net.Conn) {
			c.Write(append(rawPreamble(preambleMagic, handshakeVersion, 100), "abc"...))
			c.Close()
		}, io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, rejects := listen(t, Options{HandshakeTimeout: 200 * time.Millisecond})
			tc.peer(rawPeer(t, l))
			bystander(t, l)
			r := waitReject(t, rejects, tc.want)
			if want := fmt.Sprintf("uid:%d pid:%d", os.Geteuid(), os.Getpid()); r.peer != want {
				t.Errorf("rejected peer named %q, want %q", r.peer, want)
			}
			if l.Rejected() == 0 {
				t.Error("Rejected() = 0 after a rejection")
			}
			bystander(t, l)
		})
	}
}

// regionMappings counts this process's mappings of shared regions.
func regionMappings(t *testing.T) int {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(maps, []byte("memfd:gpufabric-shm"))
}

// TestHalfOpenPeers: many peers that connect and say nothing hold no
// region and delay no one; Close ends their handshakes.
func TestHalfOpenPeers(t *testing.T) {
	l, _ := listen(t, Options{HandshakeTimeout: time.Hour})
	before := regionMappings(t)
	for range 50 {
		rawPeer(t, l)
	}
	bystander(t, l)
	bystander(t, l)
	if n := regionMappings(t); n != before {
		t.Fatalf("%d region mappings with 50 silent peers, %d before: a region was made for a peer not admitted", n, before)
	}
}

// TestHandshakeCap: past MaxHandshakes a new peer is closed at once and
// reported; once a slot frees, peers connect again.
func TestHandshakeCap(t *testing.T) {
	l, rejects := listen(t, Options{HandshakeTimeout: time.Hour, MaxHandshakes: 2})
	first := rawPeer(t, l)
	rawPeer(t, l)
	third := rawPeer(t, l)
	waitReject(t, rejects, ErrBusy)
	third.SetReadDeadline(time.Now().Add(prompt))
	if _, err := third.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the peer past the cap reads %v, want its connection closed", err)
	}
	first.Close() // its handshake fails, its slot frees
	waitReject(t, rejects, io.EOF)
	bystander(t, l)
}

// TestAcceptClosed: Accept fails with net.ErrClosed once the listener is
// closed, also when it was already waiting.
func TestAcceptClosed(t *testing.T) {
	l, err := Listen(testPath(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("waiting Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(prompt):
		t.Fatal("Accept still waiting after Close")
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestAdmit(t *testing.T) {
	const server = 1000
	cases := []struct {
		name  string
		uid   uint32
		token string
		want  string // the listener's token
		ok    bool
	}{
		{"same user", server, "", "", true},
		{"same user, any token", server, "junk", "secret", true},
		{"root", 0, "", "", true},
		{"other user, no token wanted", 1001, "", "", false},
		{"other user, token presented, none wanted", 1001, "secret", "", false},
		{"other user, right token", 1001, "secret", "secret", true},
		{"other user, wrong token", 1001, "secreT", "secret", false},
		{"other user, prefix of the token", 1001, "secre", "secret", false},
		{"other user, token and more", 1001, "secret!", "secret", false},
		{"other user, no token", 1001, "", "secret", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := admit(tc.uid, server, []byte(tc.token), tc.want)
			if tc.ok && err != nil {
				t.Fatalf("admit: %v, want admitted", err)
			}
			if !tc.ok && !errors.Is(err, ErrNotAdmitted) {
				t.Fatalf("admit: %v, want ErrNotAdmitted", err)
			}
		})
	}
}

// The child of TestOtherUser: it dials the socket named by tokenChildEnv
// presenting the token in tokenEnv, sends "hello" and waits for the
// parent to close; exit status 3 means Dial failed.
const (
	tokenChildEnv = "GPUFABRIC_SHM_TEST_TOKEN_CHILD"
	tokenEnv      = "GPUFABRIC_SHM_TEST_TOKEN"
)

func runTokenChild(path, token string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, path, Options{Token: token})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 3
	}
	defer c.Close()
	if err := c.Send([]byte("hello"), nil); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	c.Recv() // until the parent closes
	return 0
}

// TestOtherUser runs a client as another user (nobody) in a child
// process: it is admitted only with the listener's token, and a bystander
// connects whatever it does.
func TestOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a child as another user")
	}
	const nobody = 65534
	// The child runs this test binary: put a copy where nobody may run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "gpufabric-shm-test")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	exe := filepath.Join(dir, "shm.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, listenerToken, childToken string
		admitted                        bool
	}{
		{"no token wanted", "", "", false},
		{"no token presented", "s3cret", "", false},
		{"wrong token", "s3cret", "s3cre7", false},
		{"right token", "s3cret", "s3cret", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, rejects := listen(t, Options{Token: tc.listenerToken})
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), tokenChildEnv+"="+l.Addr(), tokenEnv+"="+tc.childToken)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Skipf("cannot start a child as another user here: %v", err)
			}
			defer cmd.Process.Kill()
			if !tc.admitted {
				r := waitReject(t, rejects, ErrNotAdmitted)
				if !strings.HasPrefix(r.peer, fmt.Sprintf("uid:%d ", nobody)) {
					t.Errorf("rejected peer named %q, want uid %d", r.peer, nobody)
				}
				err := cmd.Wait()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 3 {
					t.Fatalf("child: %v (%s), want Dial to fail (exit 3)", err, stderr.String())
				}
				bystander(t, l)
				return
			}
			s, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("uid:%d", nobody); s.Info().Peer != want {
				t.Errorf("Info().Peer = %q, want %q", s.Info().Peer, want)
			}
			if body, _, err := recvFrame(s); err != nil || string(body) != "hello" {
				t.Fatalf("from the child: %q, %v (%s)", body, err, stderr.String())
			}
			s.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("child: %v (%s)", err, stderr.String())
			}
			bystander(t, l)
		})
	}
}
