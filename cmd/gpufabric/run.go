package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/term"

	"github.com/gpufabric/gpufabric/interpose"
)

func init() {
	register("run", "run a CUDA program on remote GPUs: gpufabric run [flags] -- COMMAND", runRun)
}

const runSummary = `Run COMMAND with the fabric's libcuda.so.1 and libnvidia-ml.so.1 first on
its LD_LIBRARY_PATH, so its CUDA calls go to the GPU server. The server is
checked first; the share, devices, token, trace and TLS files reach the
library through GPUFABRIC_* variables. SIGINT, SIGTERM and SIGHUP are passed on to COMMAND,
COMMAND dies with gpufabric run, and gpufabric run exits with COMMAND's status
(128+N when it died of signal N). The server frees everything COMMAND held
when its connection closes.`

// runOptions is what `gpufabric run` was asked, after flags and defaults.
type runOptions struct {
	server    string
	transport string
	bulk      string // the bulk lane's transport
	devices   string // "1".."64" or "all"
	share     string // as GPUFABRIC_SHARE takes it
	token     string
	trace     string             // absolute path, or ""
	tls       interpose.TLSFiles // absolute paths
	command   []string
	pool      *runPool // devices from the pool (runpool.go)
}

func parseRunArgs(args []string) (*runOptions, error) {
	fs := newFlags("run", "[flags] -- COMMAND [ARGS...]", runSummary)
	server := fs.String("server", envOr("GPUFABRIC_SERVER", "127.0.0.1:7070"), "GPU server address; $GPUFABRIC_SERVER sets the default")
	transport := fs.String("transport", envOr("GPUFABRIC_TRANSPORT", "auto"), "transport to the server: auto (the fastest measured), tcp or shm; $GPUFABRIC_TRANSPORT sets the default")
	bulk := fs.String("bulk-transport", envOr("GPUFABRIC_BULK_TRANSPORT", "auto"), "transport of the bulk lane, which carries large copies: auto (the highest bandwidth measured), tcp or shm; $GPUFABRIC_BULK_TRANSPORT sets the default")
	devices := fs.String("n", envOr("GPUFABRIC_DEVICES", "1"), "GPUs to attach: a count or \"all\"; $GPUFABRIC_DEVICES sets the default")
	fraction := fs.String("p", "", "share of each GPU as a fraction, e.g. 0.25; without -p or -m, $GPUFABRIC_SHARE, else the whole GPU")
	size := fs.String("m", "", "share of each GPU as a memory size, e.g. 4GiB (instead of -p)")
	token := fs.String("token", envOr("GPUFABRIC_TOKEN", ""), "token the server requires; $GPUFABRIC_TOKEN sets the default")
	trace := fs.String("trace", envOr("GPUFABRIC_TRACE", ""), "append every driver and NVML call to this file as JSON lines; $GPUFABRIC_TRACE sets the default")
	tlsFiles := tlsFlags(fs)
	rp := addRunPoolFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o := &runOptions{server: *server, transport: *transport, bulk: *bulk, devices: *devices, token: *token, command: fs.Args(), pool: rp}
	if len(o.command) == 0 {
		fs.Usage()
		return nil, errUsage
	}
	for _, f := range []struct{ flag, value string }{{"transport", o.transport}, {"bulk-transport", o.bulk}} {
		switch f.value {
		case "auto", "tcp", "shm":
		default:
			return nil, fmt.Errorf("--%s %q: want auto, tcp or shm", f.flag, f.value)
		}
	}
	if o.devices != "all" {
		if n, err := strconv.Atoi(o.devices); err != nil || n < 1 || n > 64 {
			return nil, fmt.Errorf("-n %q: want 1 to 64 or \"all\"", o.devices)
		}
	}
	switch {
	case *fraction != "" && *size != "":
		return nil, errors.New("-p and -m both given: a share is a fraction or a size")
	case *fraction != "":
		f, err := strconv.ParseFloat(*fraction, 64)
		if err != nil || !(f > 0 && f <= 1) {
			return nil, fmt.Errorf("-p %q: want a fraction in (0, 1]", *fraction)
		}
		o.share = *fraction
	case *size != "":
		n, err := humanize.ParseBytes(*size)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("-m %q: want a size such as 512MiB or 4GiB", *size)
		}
		o.share = strconv.FormatUint(n, 10) + "B"
	default:
		o.share = os.Getenv("GPUFABRIC_SHARE")
	}
	tls, err := tlsFiles().Abs()
	if err != nil {
		return nil, fmt.Errorf("--tls-*: %w", err)
	}
	if _, err := tls.Config(); err != nil { // fail here, not in the program
		return nil, err
	}
	o.tls = tls
	if *trace != "" {
		abs, err := filepath.Abs(*trace)
		if err != nil {
			return nil, fmt.Errorf("--trace: %w", err)
		}
		o.trace = abs
	}
	if err := rp.decide(fs, o, *fraction, *size); err != nil {
		return nil, err
	}
	return o, nil
}

func runRun(ctx context.Context, args []string) error {
	o, err := parseRunArgs(args)
	if err != nil {
		return err
	}
	lib, err := libDir()
	if err != nil {
		return err
	}
	release, err := o.pool.reserve(ctx, o)
	if err != nil {
		return err
	}
	defer release()
	if err := checkServer(ctx, o); err != nil {
		return err
	}
	cmd, err := prepareCommand(o, lib)
	if err != nil {
		return err
	}
	status, err := runForwarding(cmd)
	if err != nil {
		return err
	}
	if status != 0 {
		return exitError(status)
	}
	return nil
}

// libDir finds the directory of the interposer's libcuda.so.1: $GPUFABRIC_LIB,
// else lib/ beside the bin/ directory holding this binary (build/bin and
// build/lib in the tree, PREFIX/bin and PREFIX/lib installed).
func libDir() (string, error) {
	if dir := os.Getenv("GPUFABRIC_LIB"); dir != "" {
		if !hasLib(dir) {
			return "", fmt.Errorf("GPUFABRIC_LIB=%s has no libcuda.so.1", dir)
		}
		return filepath.Abs(dir)
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locate the gpufabric binary: %w", err)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	dir := filepath.Join(filepath.Dir(filepath.Dir(exe)), "lib")
	if !hasLib(dir) {
		return "", fmt.Errorf("no libcuda.so.1 in %s: build it (make build) or set GPUFABRIC_LIB to its directory", dir)
	}
	return dir, nil
}

func hasLib(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "libcuda.so.1"))
	return err == nil
}

// checkServer makes sure the server answers (a dial and its Hello) before
// the program starts, so a wrong address fails here and not deep in a
// framework's initialisation.
func checkServer(ctx context.Context, o *runOptions) error {
	tlsConfig, err := o.tls.Config()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// A pool's run may span servers: a comma-separated list, with a
	// capability each (one token for all otherwise), as the library
	// reads them.
	servers, tokens := strings.Split(o.server, ","), strings.Split(o.token, ",")
	for i, server := range servers {
		token := o.token
		if len(servers) > 1 && len(tokens) == len(servers) {
			token = tokens[i]
		}
		s, err := interpose.Dial(ctx, server, interpose.Options{Token: token, Client: "gpufabric run (check)", TLS: tlsConfig})
		if err != nil {
			return fmt.Errorf("GPU server %s: %w", server, err)
		}
		if err := s.CloseContext(ctx); err != nil {
			return err
		}
	}
	return nil
}

// prepareCommand prepares COMMAND with the library first on its search path and
// the session's configuration in its environment.
func prepareCommand(o *runOptions, lib string) (*exec.Cmd, error) {
	path, err := exec.LookPath(o.command[0])
	if err != nil {
		// What a shell says and exits with for a command it cannot find.
		fmt.Fprintf(os.Stderr, "gpufabric run: %v\n", err)
		return nil, exitError(127)
	}
	set := map[string]string{
		"GPUFABRIC_SERVER":         o.server,
		"GPUFABRIC_TRANSPORT":      o.transport,
		"GPUFABRIC_BULK_TRANSPORT": o.bulk,
		"GPUFABRIC_DEVICES":        o.devices,
		"GPUFABRIC_SHARE":          o.share,
		"GPUFABRIC_TOKEN":          o.token,
		"GPUFABRIC_TRACE":          o.trace,
		interpose.EnvTLSCA:         o.tls.CA,
		interpose.EnvTLSCert:       o.tls.Cert,
		interpose.EnvTLSKey:        o.tls.Key,
		interpose.EnvTLSServerName: o.tls.ServerName,
		"LD_LIBRARY_PATH":          prependPath(lib, os.Getenv("LD_LIBRARY_PATH")),
	}
	cmd := exec.Command(path, o.command[1:]...)
	cmd.Args[0] = o.command[0]
	cmd.Env = childEnv(os.Environ(), set)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setPdeathsig(cmd.SysProcAttr)
	return cmd, nil
}

// prependPath puts dir first on a colon-separated search path, once.
func prependPath(dir, path string) string {
	parts := []string{dir}
	for _, p := range strings.Split(path, ":") {
		if p != "" && p != dir {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ":")
}

// childEnv is base with the variables of set replaced; an empty value
// removes the variable, so an old setting cannot leak into the child.
func childEnv(base []string, set map[string]string) []string {
	env := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ours := set[k]; !ours {
			env = append(env, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if v := set[k]; v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// setPdeathsig asks the kernel to SIGKILL the child if gpufabric run dies,
// where the platform has the feature (Linux's PR_SET_PDEATHSIG). The field
// exists only in some systems' SysProcAttr, so it is set by name.
func setPdeathsig(attr *syscall.SysProcAttr) {
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
}

// runForwarding starts cmd, passes SIGINT, SIGTERM and SIGHUP on to it and
// returns its exit status, 128+N when it died of signal N.
func runForwarding(cmd *exec.Cmd) (int, error) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	// The parent-death signal fires when the thread that forked exits, not
	// the process: fork from a thread the runtime keeps (a locked thread is
	// discarded only if its goroutine exits still locked).
	runtime.LockOSThread()
	err := cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return 0, err
	}
	// A terminal sends SIGINT and SIGQUIT to its whole foreground process
	// group, COMMAND included; passing them on again would deliver them
	// twice.
	fromTerminal := term.IsTerminal(int(os.Stdin.Fd()))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			if (sig == syscall.SIGINT || sig == syscall.SIGQUIT) && fromTerminal {
				continue
			}
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			return exitStatus(cmd.ProcessState, err)
		}
	}
}

// exitStatus maps how a process ended to a shell-style status.
func exitStatus(ps *os.ProcessState, waitErr error) (int, error) {
	if ps == nil {
		return 0, waitErr
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ps.ExitCode(), nil
}
