package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// statusBytes reads a field given in kB ("VmRSS", "VmHWM") from
// /proc/PID/status, in bytes.
func statusBytes(pid int, field string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || key != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status %s: %w", pid, field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// rssWatch follows a process's resident memory through a phase: its peak
// high-water mark (VmHWM, reset at the start where the kernel lets us
// write clear_refs) or, where it cannot be reset, the highest of samples.
type rssWatch struct {
	pid      int
	hwmReset bool
	mu       sync.Mutex
	peak     uint64
	quit     chan struct{}
	done     chan struct{}
}

// watchRSS starts watching pid; 0 watches nothing.
func watchRSS(pid int) *rssWatch {
	w := &rssWatch{pid: pid, quit: make(chan struct{}), done: make(chan struct{})}
	if pid <= 0 {
		close(w.done)
		return w
	}
	// "5" resets the peak resident set size (proc(5)).
	w.hwmReset = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	go func() {
		defer close(w.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			w.sample()
			select {
			case <-w.quit:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *rssWatch) sample() uint64 {
	rss, err := statusBytes(w.pid, "VmRSS")
	if err != nil {
		return 0
	}
	w.mu.Lock()
	w.peak = max(w.peak, rss)
	w.mu.Unlock()
	return rss
}

// now is the resident memory now; 0 when unknown.
func (w *rssWatch) now() uint64 {
	if w.pid <= 0 {
		return 0
	}
	return w.sample()
}

// stop ends the watch and returns the peak and how it was found.
func (w *rssWatch) stop() (uint64, string) {
	if w.pid <= 0 {
		return 0, ""
	}
	close(w.quit)
	<-w.done
	w.sample()
	if w.hwmReset {
		if hwm, err := statusBytes(w.pid, "VmHWM"); err == nil {
			return max(hwm, w.peak), "hwm"
		}
	}
	return w.peak, "sampled"
}

// listenerPID finds the process on this host listening on addr's TCP
// port: the socket's inode from /proc/net/tcp (or tcp6), then the process
// holding a descriptor of it. Only processes whose descriptors this one
// may read (the same user's) are found.
func listenerPID(addr string) (int, error) {
	if !onLoopback(addr) {
		return 0, fmt.Errorf("the server %s is not on loopback", addr)
	}
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %q: %w", portText, err)
	}
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && p == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no socket listens on port %d here", port)
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if link, err := os.Readlink(fd); err == nil && inodes[link] {
			pid, err := strconv.Atoi(strings.Split(fd, "/")[2])
			if err == nil && pid != os.Getpid() {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no process of this user holds the socket listening on port %d", port)
}
