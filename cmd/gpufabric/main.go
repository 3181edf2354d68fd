// Command gpufabric is the one binary of the fabric: the GPU server, the
// launcher for applications, and the operator's tools. It holds flags and
// wiring only; the work is in the packages it calls.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/gpufabric/gpufabric/bench"
	"github.com/gpufabric/gpufabric/interpose"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// commands is filled by each subcommand's file.
var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, args []string) error) {
	commands[name] = command{summary, run}
}

// errUsage marks an error whose message is the usage already printed.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "gpufabric pools GPUs over the network and lends them, whole or in fractions, to CUDA applications.")
	fmt.Fprintln(w, "\nUsage: gpufabric COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'gpufabric COMMAND -h' for a command's flags.")
}

func main() {
	bench.ServeFloorChild() // when this process is the echo of `bench`'s two-process floor
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(os.Stdout)
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "gpufabric: unknown command %q\n\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd.run(ctx, os.Args[2:])
	var exit exitError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case errors.As(err, &exit):
		os.Exit(int(exit))
	default:
		fmt.Fprintf(os.Stderr, "gpufabric %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// exitError asks main to exit with a status and say nothing more: `run`
// exits with its command's status.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// newFlags makes a subcommand's flag set with a usage line.
func newFlags(name, args, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: gpufabric %s %s\n\n%s\n\nFlags:\n", name, args, summary)
		fs.PrintDefaults()
	}
	return fs
}

// newLogger logs text to stderr at the level named by --log-level.
func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// tlsFlags adds the client's TLS flags to fs, each defaulting to its
// GPUFABRIC_TLS_* variable, and returns what they name once parsed.
func tlsFlags(fs *flag.FlagSet) func() interpose.TLSFiles {
	var f interpose.TLSFiles
	fs.StringVar(&f.CA, "tls-ca", os.Getenv(interpose.EnvTLSCA), "dial the server over TLS, trusting the CA of this file (PEM); $"+interpose.EnvTLSCA+" sets the default")
	fs.StringVar(&f.Cert, "tls-cert", os.Getenv(interpose.EnvTLSCert), "client certificate (PEM) for a server that requires one; $"+interpose.EnvTLSCert+" sets the default")
	fs.StringVar(&f.Key, "tls-key", os.Getenv(interpose.EnvTLSKey), "the private key of --tls-cert (PEM); $"+interpose.EnvTLSKey+" sets the default")
	fs.StringVar(&f.ServerName, "tls-server-name", os.Getenv(interpose.EnvTLSServerName), "name the server's certificate must carry (default: the host of --server); $"+interpose.EnvTLSServerName+" sets the default")
	return func() interpose.TLSFiles { return f }
}

// envOr returns the environment variable's value, or def.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
