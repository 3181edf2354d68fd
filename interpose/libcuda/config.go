package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/gpufabric/gpufabric/interpose"
)

// config is what the library reads from the environment that
// `gpufabric run` prepares.
type config struct {
	// targets are the servers, in the order their devices are numbered:
	// GPUFABRIC_SERVER is one host:port, or several separated by commas
	// (a run whose devices span servers).
	targets   []target
	share     interpose.Share    // GPUFABRIC_SHARE: "0.25", "25%" or "512MiB"
	transport string             // GPUFABRIC_TRANSPORT: "", "auto", "tcp" or "shm"
	bulk      string             // GPUFABRIC_BULK_TRANSPORT: the same, for the bulk lane
	tls       interpose.TLSFiles // GPUFABRIC_TLS_CA, _CERT, _KEY, _SERVER_NAME
}

// target is one server and what to take of it.
type target struct {
	server string // host:port
	// devices: how many; 0 means all the server has. GPUFABRIC_DEVICES is
	// one count for every server, or one per server separated by commas.
	devices int
	// token: GPUFABRIC_TOKEN, the same for every server, or with several
	// servers one per server separated by commas (a pool's capabilities,
	// which hold no comma).
	token string
}

// parseConfig reads the configuration through getenv.
func parseConfig(getenv func(string) string) (config, error) {
	c := config{
		transport: strings.TrimSpace(getenv("GPUFABRIC_TRANSPORT")),
		bulk:      strings.TrimSpace(getenv("GPUFABRIC_BULK_TRANSPORT")),
		tls:       interpose.TLSFilesFromEnv(getenv),
	}
	servers := strings.Split(strings.TrimSpace(getenv("GPUFABRIC_SERVER")), ",")
	if servers[0] == "" {
		return c, fmt.Errorf("GPUFABRIC_SERVER is not set: start the program with `gpufabric run --server HOST:PORT -- PROGRAM`")
	}
	token := getenv("GPUFABRIC_TOKEN")
	tokens := []string{token}
	if parts := strings.Split(token, ","); len(servers) > 1 && len(parts) == len(servers) {
		tokens = parts
	}
	counts := []string{"1"}
	if v := strings.TrimSpace(getenv("GPUFABRIC_DEVICES")); v != "" {
		counts = strings.Split(v, ",")
	}
	if len(counts) != 1 && len(counts) != len(servers) {
		return c, fmt.Errorf("GPUFABRIC_DEVICES=%q: want one count, or one per server of GPUFABRIC_SERVER (%d)", getenv("GPUFABRIC_DEVICES"), len(servers))
	}
	for i, srv := range servers {
		t := target{server: strings.TrimSpace(srv), token: tokens[min(i, len(tokens)-1)]}
		if t.server == "" {
			return c, fmt.Errorf("GPUFABRIC_SERVER=%q: an empty server in the list", getenv("GPUFABRIC_SERVER"))
		}
		v := strings.TrimSpace(counts[min(i, len(counts)-1)])
		if v != "all" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 64 {
				return c, fmt.Errorf("GPUFABRIC_DEVICES=%q: want 1 to 64 or \"all\"", getenv("GPUFABRIC_DEVICES"))
			}
			t.devices = n
		}
		c.targets = append(c.targets, t)
	}
	share, err := parseShare(getenv("GPUFABRIC_SHARE"))
	if err != nil {
		return c, fmt.Errorf("GPUFABRIC_SHARE: %w", err)
	}
	c.share = share
	for _, v := range []struct{ name, value string }{{"GPUFABRIC_TRANSPORT", c.transport}, {"GPUFABRIC_BULK_TRANSPORT", c.bulk}} {
		switch v.value {
		case "", "auto", "tcp", "shm":
		default:
			return c, fmt.Errorf("%s=%q: want auto, tcp or shm", v.name, v.value)
		}
	}
	return c, nil
}

// parseShare reads a share of a device: a fraction in (0, 1] ("0.25"), a
// percentage ("25%"), or a size with a unit ("512MiB", "2GB"). Empty means
// the whole device.
func parseShare(s string) (interpose.Share, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return interpose.Share{Fraction: 1}, nil
	}
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || !(f > 0 && f <= 100) {
			return interpose.Share{}, fmt.Errorf("%q: a percentage must be in (0, 100]", s)
		}
		return interpose.Share{Fraction: f / 100}, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || f <= 0 || f > 1 {
			return interpose.Share{}, fmt.Errorf("%q: a fraction must be in (0, 1]; give a size with a unit (512MiB) for bytes", s)
		}
		return interpose.Share{Fraction: f}, nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 {
		return interpose.Share{}, fmt.Errorf("%q: want a fraction (0.25), a percentage (25%%) or a size (512MiB)", s)
	}
	return interpose.Share{Bytes: n}, nil
}
