package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

func init() {
	register("smi", "show a server's devices and the sessions holding them", runSMI)
}

func runSMI(ctx context.Context, args []string) error {
	fs := newFlags("smi", "[flags]", "Show a GPU server's devices, their memory and health, and every session with what it holds.")
	server := fs.String("server", envOr("GPUFABRIC_SERVER", "127.0.0.1:7070"), "server address")
	token := fs.String("token", envOr("GPUFABRIC_TOKEN", ""), "token the server requires")
	asJSON := fs.Bool("json", false, "print JSON")
	tlsFiles := tlsFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	tlsConfig, err := tlsFiles().Config()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := interpose.Dial(ctx, *server, interpose.Options{Token: *token, Client: "gpufabric smi", TLS: tlsConfig})
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := s.Status()
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	// The smi session itself is not worth showing.
	own := s.ID()
	sessions := st.Sessions[:0]
	for _, ss := range st.Sessions {
		if ss.ID != own {
			sessions = append(sessions, ss)
		}
	}
	st.Sessions = sessions
	return writeStatus(os.Stdout, st)
}

func writeStatus(w io.Writer, st *api.Status) error {
	fmt.Fprintf(w, "server %s (protocol %d), up %s\n\n", st.Server, st.Version, time.Since(st.Started).Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEV\tNAME\tBACKEND\tMEMORY\tSHARED OUT\tSESSIONS USE\tOTHERS USE\tSESSIONS\tUTIL\tTEMP\tPOWER\tHEALTH")
	for _, d := range st.Devices {
		name := d.Name
		backend := d.Backend
		if d.Emulated {
			backend += " (emulated)"
		}
		health := "ok"
		if !d.Healthy {
			health = d.Health
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", d.Index, name, backend,
			humanize.IBytes(d.TotalBytes), humanize.IBytes(d.ReservedBytes), humanize.IBytes(d.SessionBytes),
			humanize.IBytes(d.OtherBytes), d.Sessions,
			unknown(d.Utilization, "%.0f%%", 100), unknown(d.TemperatureC, "%.0f C", 1), unknown(d.PowerWatts, "%.0f W", 1), health)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(st.Sessions) == 0 {
		fmt.Fprintln(w, "no sessions")
		return nil
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tCLIENT\tTRANSPORT\tREMOTE\tAGE\tDEV\tSHARE\tUSED\tALLOCS\tSTREAMS\tEVENTS\tMODULES\tINFLIGHT\tSTAGING\tUNREAD")
	for _, ss := range st.Sessions {
		age := time.Since(ss.Started).Round(time.Second)
		// Work in flight, payloads being staged, and how long replies have
		// waited for the client: what the server holds a tenant to.
		load := fmt.Sprintf("%d\t%s\t%s", ss.Inflight, humanize.IBytes(uint64(max(ss.StagingBytes, 0))), unread(ss.Outbox))
		if len(ss.Devices) == 0 {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t%d\t%d\t%d\t%s\n", ss.ID, ss.Client, ss.Transport, ss.Remote, age, ss.Streams, ss.Events, ss.Modules, load)
		}
		for i, d := range ss.Devices {
			if i == 0 {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t", ss.ID, ss.Client, ss.Transport, ss.Remote, age)
			} else {
				fmt.Fprint(tw, "\t\t\t\t\t")
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", d.Device, humanize.IBytes(d.QuotaBytes), humanize.IBytes(d.UsedBytes),
				d.Allocations, ss.Streams, ss.Events, ss.Modules, load)
		}
	}
	return tw.Flush()
}

// unread is how long a session's replies have waited for its client: "-"
// when none wait.
func unread(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

func unknown(v float64, format string, scale float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf(format, v*scale)
}
