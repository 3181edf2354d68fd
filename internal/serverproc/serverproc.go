// Package serverproc runs `gpufabric server` as a separate process on a
// free loopback port: the end-to-end tests (through internal/servertest)
// and the benchmark suite's probe-cost scenario, which must measure a
// server whose eBPF probes watch its own process and not the client's,
// start servers this way.
//
// Launch runs the server with --listen 127.0.0.1:0 (the server logs the
// address it got) and the host backend, unless the flags say otherwise,
// and returns once it accepts connections, waiting for that with a
// deadline rather than a fixed sleep. The server's log is captured in a
// buffer safe to read while the server writes it. Stop ends it with
// SIGTERM, then SIGKILL after a deadline.
//
// The environment's GPUFABRIC_* variables are not passed on, so a
// developer's settings cannot change what a test or a benchmark runs.
package serverproc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Timeouts: how long a server may take to start serving, and to stop after
// SIGTERM before it is killed.
const (
	StartTimeout = 30 * time.Second
	StopTimeout  = 10 * time.Second
)

// Config says how to start a server.
type Config struct {
	// Bin is the gpufabric binary.
	Bin string
	// Args are flags of `gpufabric server`, after the harness's own
	// (--listen 127.0.0.1:0 --backend host), which they may override.
	Args []string
	// Env is added to the server's environment.
	Env []string
}

// Server is a running `gpufabric server` process.
type Server struct {
	// Addr is the TCP address it serves (host:port).
	Addr string
	// Shm is its shared-memory endpoint, as offered to clients
	// ("@gpufabric-PORT"), or "" when it offers none.
	Shm string

	cmd  *exec.Cmd
	log  *Buffer
	done chan struct{} // closed when the process has exited
	err  error         // how it exited; set before done closes
	stop sync.Once
}

var (
	servingRE = regexp.MustCompile(`msg=serving listen=(\S+)`)
	shmRE     = regexp.MustCompile(`\bshm:(@?[^\s"]+)`)
)

// Launch starts a server and waits until it accepts connections. The
// caller stops it.
func Launch(cfg Config) (*Server, error) {
	args := append([]string{"server", "--listen", "127.0.0.1:0", "--backend", "host"}, cfg.Args...)
	cmd := exec.Command(cfg.Bin, args...)
	cmd.Env = append(cleanEnv(os.Environ()), cfg.Env...)
	s := &Server{cmd: cmd, log: new(Buffer), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(StartTimeout)
	for {
		m := servingRE.FindStringSubmatch(s.log.String())
		if m != nil && accepts(m[1]) {
			s.Addr = m[1]
			break
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("serverproc: the server exited (%v) before serving:\n%s", s.err, s.log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("serverproc: the server did not serve within %v:\n%s", StartTimeout, s.log)
		}
	}
	for _, line := range strings.Split(s.log.String(), "\n") {
		if servingRE.MatchString(line) {
			if m := shmRE.FindStringSubmatch(line); m != nil {
				s.Shm = m[1]
			}
		}
	}
	return s, nil
}

// accepts reports whether a TCP connection to addr is accepted.
func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// cleanEnv is env without the GPUFABRIC_* variables.
func cleanEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "GPUFABRIC_") {
			out = append(out, kv)
		}
	}
	return out
}

// Log is what the server has written to stdout and stderr so far.
func (s *Server) Log() string { return s.log.String() }

// Signal sends sig to the server.
func (s *Server) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// Done is closed when the server process has exited; Err then says how.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is how the process exited (nil for status 0), once Done is closed.
func (s *Server) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return errors.New("serverproc: the server is still running")
	}
}

// Wait waits until the server exits or the timeout passes, and returns
// how it exited.
func (s *Server) Wait(timeout time.Duration) error {
	select {
	case <-s.done:
		return s.err
	case <-time.After(timeout):
		return fmt.Errorf("serverproc: the server is still running after %v", timeout)
	}
}

// Stop ends the server: SIGTERM, which stops it cleanly, then SIGKILL if
// it is still running after StopTimeout. It returns once the process has
// exited, with how it exited; later calls do nothing more.
func (s *Server) Stop() error {
	s.stop.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(StopTimeout):
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	<-s.done
	return s.err
}

// Kill ends the server at once with SIGKILL, as a crash would.
func (s *Server) Kill() {
	s.stop.Do(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
	<-s.done
}

// Buffer is a bytes.Buffer safe for one writer and many readers at once.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
