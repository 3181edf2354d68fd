// Package metrics exports a GPU server's state to Prometheus: what `smi`
// shows (devices, their memory and shares, sessions and what each holds),
// the stage clocks of its calls, the goroutines' wait for a thread, and,
// when the server runs them, its eBPF probes' histograms and TCP
// connections.
//
// A Collector reads the server's Status at each scrape, so nothing is
// kept or updated on the call path: a server that is never scraped pays
// nothing. The server's log2 histograms become Prometheus histograms whose
// bucket bounds are the powers of two in seconds (2^(b+1) ns for bucket
// b), cumulative as Prometheus wants them.
package metrics

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpufabric/gpufabric/engine/api"
)

// Source is what the collector reads: engine.Server's Status.
type Source interface {
	Status() api.Status
}

// Collector is a prometheus.Collector of a server's state.
type Collector struct {
	src Source
}

// New returns a collector of src's state.
func New(src Source) *Collector { return &Collector{src: src} }

const ns = "gpufabric"

var (
	deviceLabels  = []string{"device", "name", "backend"}
	deviceMemory  = prometheus.NewDesc(ns+"_device_memory_bytes", "Device memory by kind: total, free (as the device reports it), reserved (the shares of attached sessions), sessions (allocated by sessions), other (in use by other processes or the driver).", append(deviceLabels, "kind"), nil)
	deviceSess    = prometheus.NewDesc(ns+"_device_sessions", "Sessions attached to the device.", deviceLabels, nil)
	deviceHealthy = prometheus.NewDesc(ns+"_device_healthy", "1 when the device is healthy.", deviceLabels, nil)
	deviceUtil    = prometheus.NewDesc(ns+"_device_utilization_ratio", "The device's utilization, 0-1, where the backend reports it.", deviceLabels, nil)
	deviceTemp    = prometheus.NewDesc(ns+"_device_temperature_celsius", "The device's temperature, where the backend reports it.", deviceLabels, nil)
	devicePower   = prometheus.NewDesc(ns+"_device_power_watts", "The device's power draw, where the backend reports it.", deviceLabels, nil)

	sessionLabels  = []string{"session", "client", "transport"}
	sessionMemory  = prometheus.NewDesc(ns+"_session_memory_bytes", "A session's hold on a device: quota (its share) and used.", append(sessionLabels, "device", "kind"), nil)
	sessionInfl    = prometheus.NewDesc(ns+"_session_inflight", "Work the session has queued and not seen finish.", sessionLabels, nil)
	sessionOutbox  = prometheus.NewDesc(ns+"_session_outbox_wait_seconds", "How long the session's replies have waited for its client to read them.", sessionLabels, nil)
	sessionStaging = prometheus.NewDesc(ns+"_session_staging_bytes", "The session's staging budget in use.", sessionLabels, nil)
	sessionSRTT    = prometheus.NewDesc(ns+"_session_tcp_srtt_seconds", "The session's TCP connection's latest smoothed round-trip time (eBPF).", sessionLabels, nil)
	sessionRetrans = prometheus.NewDesc(ns+"_session_tcp_retransmits_total", "Segments the session's TCP connection retransmitted (eBPF).", sessionLabels, nil)

	stageSeconds = prometheus.NewDesc(ns+"_call_stage_seconds", "Where sampled synchronous calls spent their time in the server, by stage (one call in 64).", []string{"stage"}, nil)
	goWait       = prometheus.NewDesc(ns+"_goroutine_wait_seconds", "How long the server's goroutines waited, runnable, for a thread (the Go runtime's sampled histogram; the sum is estimated).", nil, nil)
	probeSeconds = prometheus.NewDesc(ns+"_probe_seconds", "The eBPF probes' histograms of the server's threads, by role and metric (runqueue, offcpu, syscall_*).", []string{"role", "metric"}, nil)
	probesUp     = prometheus.NewDesc(ns+"_probes_loaded", "1 when the server's eBPF probes are loaded.", nil, nil)
)

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{deviceMemory, deviceSess, deviceHealthy, deviceUtil, deviceTemp, devicePower,
		sessionMemory, sessionInfl, sessionOutbox, sessionStaging, sessionSRTT, sessionRetrans,
		stageSeconds, goWait, probeSeconds, probesUp} {
		ch <- d
	}
}

// Collect reads the server's status and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, d := range st.Devices {
		l := []string{strconv.Itoa(d.Index), d.Name, d.Backend}
		for kind, v := range map[string]uint64{"total": d.TotalBytes, "free": d.FreeBytes, "reserved": d.ReservedBytes, "sessions": d.SessionBytes, "other": d.OtherBytes} {
			gauge(deviceMemory, float64(v), append(l, kind)...)
		}
		gauge(deviceSess, float64(d.Sessions), l...)
		gauge(deviceHealthy, b2f(d.Healthy), l...)
		// Negative means the backend does not say: no sample rather than
		// a made-up one.
		for desc, v := range map[*prometheus.Desc]float64{deviceUtil: d.Utilization, deviceTemp: d.TemperatureC, devicePower: d.PowerWatts} {
			if v >= 0 {
				gauge(desc, v, l...)
			}
		}
	}
	for _, s := range st.Sessions {
		l := []string{strconv.FormatUint(s.ID, 10), s.Client, s.Transport}
		for _, d := range s.Devices {
			dev := strconv.Itoa(d.Device)
			gauge(sessionMemory, float64(d.QuotaBytes), append(l, dev, "quota")...)
			gauge(sessionMemory, float64(d.UsedBytes), append(l, dev, "used")...)
		}
		gauge(sessionInfl, float64(s.Inflight), l...)
		gauge(sessionOutbox, s.Outbox.Seconds(), l...)
		gauge(sessionStaging, float64(s.StagingBytes), l...)
		if s.TCP != nil {
			gauge(sessionSRTT, float64(s.TCP.LastSRTT)/1e9, l...)
			ch <- prometheus.MustNewConstMetric(sessionRetrans, prometheus.CounterValue, float64(s.TCP.Retransmits), l...)
		}
	}
	for _, s := range st.Stages {
		ch <- histogram(stageSeconds, s.Times, s.Stage)
	}
	if st.GoRunQueue != nil {
		ch <- histogram(goWait, *st.GoRunQueue)
	}
	if p := st.Probes; p != nil {
		gauge(probesUp, b2f(p.Error == ""))
		for _, r := range p.Roles {
			ch <- histogram(probeSeconds, r.Times, r.Role, r.Metric)
		}
	}
}

// histogram turns a log2 histogram of nanoseconds into a Prometheus one in
// seconds: bucket b's upper bound is 2^(b+1) ns, counts cumulative.
func histogram(d *prometheus.Desc, h api.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Buckets))
	var cum uint64
	for b, n := range h.Buckets {
		cum += n
		buckets[math.Ldexp(1, b+1)/1e9] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count, float64(h.Sum)/1e9, buckets, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
