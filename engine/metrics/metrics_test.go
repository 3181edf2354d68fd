package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpufabric/gpufabric/engine/api"
)

type fixed api.Status

func (f fixed) Status() api.Status { return api.Status(f) }

func sample() api.Status {
	return api.Status{
		Devices: []api.DeviceStatus{{Index: 0, Name: "emulated", Backend: "host", TotalBytes: 1 << 30, FreeBytes: 3 << 28,
			ReservedBytes: 1 << 28, SessionBytes: 1 << 20, Sessions: 1, Utilization: -1, TemperatureC: -1, PowerWatts: 212, Healthy: true}},
		Sessions: []api.SessionStatus{{ID: 7, Client: "train.py", Transport: "tcp", Inflight: 3, Outbox: 2 * time.Millisecond,
			Devices: []api.SessionDeviceStatus{{Device: 0, QuotaBytes: 1 << 28, UsedBytes: 1 << 20}},
			TCP:     &api.ConnProbe{LastSRTT: 40_000, Retransmits: 2}}},
		// Two calls of 1.5 µs (bucket 10: 1024-2048 ns), one of 5 µs (bucket 12).
		Stages:     []api.StageHistogram{{Stage: api.StageServer, Times: api.Histogram{Buckets: []uint64{10: 2, 12: 1}, Count: 3, Sum: 8000}}},
		GoRunQueue: &api.Histogram{Buckets: []uint64{3}, Count: 3, Sum: 3},
		Probes:     &api.ProbeStatus{Roles: []api.RoleHistogram{{Role: "shard", Metric: "runqueue", Times: api.Histogram{Buckets: []uint64{0, 1}, Count: 1, Sum: 3}}}},
	}
}

func TestCollector(t *testing.T) {
	c := New(fixed(sample()))
	want := `
# HELP gpufabric_call_stage_seconds Where sampled synchronous calls spent their time in the server, by stage (one call in 64).
# TYPE gpufabric_call_stage_seconds histogram
gpufabric_call_stage_seconds_bucket{stage="server",le="2e-09"} 0
gpufabric_call_stage_seconds_bucket{stage="server",le="4e-09"} 0
gpufabric_call_stage_seconds_bucket{stage="server",le="8e-09"} 0
gpufabric_call_stage_seconds_bucket{stage="server",le="1.6e-08"} 0
gpufabric_call_stage_seconds_bucket{stage="server",le="3.2e-08"} 0
gpufabric_call_stage_seconds_bucket{stage="server",le="6.4e-08"} 0
gpufabric_call_stage_seconds_bucket{stage="server",le="1.28e-07"} 0
gpufabric_call_stage_seconds_bucket{stage="server",le="2.56e-07"} 0
gpufabric_call_stage_seconds_bucket{stage="server",le="5.12e-07"} 0
gpufabric_call_stage_seconds_bucket{stage="server",le="1.024e-06"} 0
gpufabric_call_stage_seconds_bucket{stage="server",le="2.048e-06"} 2
gpufabric_call_stage_seconds_bucket{stage="server",le="4.096e-06"} 2
gpufabric_call_stage_seconds_bucket{stage="server",le="8.192e-06"} 3
gpufabric_call_stage_seconds_bucket{stage="server",le="+Inf"} 3
gpufabric_call_stage_seconds_sum{stage="server"} 8e-06
gpufabric_call_stage_seconds_count{stage="server"} 3
# HELP gpufabric_device_power_watts The device's power draw, where the backend reports it.
# TYPE gpufabric_device_power_watts gauge
gpufabric_device_power_watts{backend="host",device="0",name="emulated"} 212
# HELP gpufabric_session_memory_bytes A session's hold on a device: quota (its share) and used.
# TYPE gpufabric_session_memory_bytes gauge
gpufabric_session_memory_bytes{client="train.py",device="0",kind="quota",session="7",transport="tcp"} 2.68435456e+08
gpufabric_session_memory_bytes{client="train.py",device="0",kind="used",session="7",transport="tcp"} 1.048576e+06
# HELP gpufabric_session_tcp_retransmits_total Segments the session's TCP connection retransmitted (eBPF).
# TYPE gpufabric_session_tcp_retransmits_total counter
gpufabric_session_tcp_retransmits_total{client="train.py",session="7",transport="tcp"} 2
`
	names := []string{"gpufabric_call_stage_seconds", "gpufabric_device_power_watts", "gpufabric_session_memory_bytes", "gpufabric_session_tcp_retransmits_total"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// Unknown readings (negative) give no sample rather than a made-up one.
	if n := testutil.CollectAndCount(c, "gpufabric_device_temperature_celsius", "gpufabric_device_utilization_ratio"); n != 0 {
		t.Errorf("%d samples of unknown readings", n)
	}
	if n := testutil.CollectAndCount(c, "gpufabric_probe_seconds", "gpufabric_goroutine_wait_seconds", "gpufabric_device_memory_bytes"); n != 1+1+5 {
		t.Errorf("%d samples of probes, goroutine waits and device memory, want 7", n)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// A server without probes or sessions exports its devices alone.
func TestCollectorIdle(t *testing.T) {
	st := sample()
	st.Sessions, st.Probes, st.Stages = nil, nil, nil
	if n := testutil.CollectAndCount(New(fixed(st)), "gpufabric_session_inflight", "gpufabric_probes_loaded", "gpufabric_call_stage_seconds"); n != 0 {
		t.Errorf("%d samples from an idle server without probes", n)
	}
}
