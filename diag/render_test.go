package diag

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// sampleReport is a two-socket GPU server with RoCE NICs, as diag run
// against another server would show it.
func sampleReport() Report {
	return Report{
		Host: HostReport{
			Hostname: "gpu-07",
			Kernel:   "6.8.0-45-generic",
			Arch:     "x86_64",
			BootID:   "1c9d5a5e-8f0b-4a57-9d7e-3b1f2f0c6a11",
			NUMANodes: []NUMANode{
				{ID: 0, CPUs: "0-31", Distances: []int{10, 21}},
				{ID: 1, CPUs: "32-63", Distances: []int{21, 10}},
			},
			NICs: []NIC{
				{Name: "lo", Type: "device", OperState: "unknown", MTU: 65536,
					Addresses: []string{"127.0.0.1/8", "::1/128"}, NUMANode: -1},
				{Name: "enp28s0np0", Type: "device", OperState: "up", MAC: "b8:59:9f:00:00:00", MTU: 9000,
					Addresses: []string{"10.1.0.7/24"}, SpeedBitsPerSec: 400e9, NUMANode: 0,
					PCIBusID: "0000:1c:00.0", RDMADevice: "mlx5_0"},
				{Name: "eno1", Type: "device", OperState: "down", MAC: "3c:ec:ef:00:00:01", MTU: 1500,
					NUMANode: 0, PCIBusID: "0000:02:00.0"},
				{Name: "docker0", Type: "bridge", OperState: "down", MAC: "02:42:ac:11:00:01", MTU: 1500,
					Addresses: []string{"172.17.0.1/16"}, NUMANode: -1},
			},
			RDMADevices: []RDMADevice{
				{Name: "mlx5_0", NUMANode: 0, PCIBusID: "0000:1c:00.0", Ports: []RDMAPort{{
					Port: 1, State: "ACTIVE", LinkLayer: "Ethernet", Netdev: "enp28s0np0",
					GIDs: []string{"fe80::ba59:9fff:fe00:0", "::ffff:10.1.0.7"}, GIDTypes: []string{"IB/RoCE v1", "RoCE v2"}, MTU: 4096,
				}}},
			},
			GPUs: []GPU{
				{PCIBusID: "0000:1a:00.0", NUMANode: 0, NearestNIC: "enp28s0np0", NearestRDMADevice: "mlx5_0", Affinity: "same PCIe switch"},
				{PCIBusID: "0000:88:00.0", NUMANode: 1, NearestNIC: "enp28s0np0", NearestRDMADevice: "mlx5_0", Affinity: "remote"},
			},
			Warnings: []string{"rdma device mlx5_1: open /sys/class/infiniband/mlx5_1/ports: permission denied"},
		},
		Server: &ServerReport{
			Address: "gpu-08:7070",
			Candidates: []Candidate{
				{Transport: "rdma", Endpoint: "mlx5_0/1 gid 3", LatencyP50: 4210 * time.Nanosecond,
					LatencyP99: 9876543 * time.Nanosecond / 1000, BandwidthBytesPerSec: 48.25e9},
				{Transport: "tcp", Endpoint: "10.1.0.8:7070", LatencyP50: 18 * time.Microsecond,
					LatencyP99: 2500 * time.Microsecond, BandwidthBytesPerSec: 11.8e9},
				{Transport: "shm", Error: "peer boot id differs: not the same host"},
			},
			CallLane: "rdma",
			BulkLane: "rdma",
			Reason:   "rdma has the lowest p50 latency and the highest bandwidth",
		},
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		golden string
		write  func(*bytes.Buffer, Report) error
		report Report
	}{
		{"report.table.golden", func(b *bytes.Buffer, r Report) error { return WriteTable(b, r) }, sampleReport()},
		{"report.json.golden", func(b *bytes.Buffer, r Report) error { return WriteJSON(b, r) }, sampleReport()},
		// A host with nothing found and no server: every list says none.
		{"empty.table.golden", func(b *bytes.Buffer, r Report) error { return WriteTable(b, r) }, Report{}},
		{"empty.json.golden", func(b *bytes.Buffer, r Report) error { return WriteJSON(b, r) }, Report{}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var got bytes.Buffer
			if err := tt.write(&got, tt.report); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("output differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got.Bytes(), want)
			}
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := WriteJSON(&again, back); err != nil {
		t.Fatal(err)
	}
	if again.String() != b.String() {
		t.Errorf("JSON changed on a round trip:\n%s\nthen:\n%s", b.String(), again.String())
	}
	if got, want := back.Server.Candidates[0].LatencyP50, 4210*time.Nanosecond; got != want {
		t.Errorf("latency p50 after the round trip = %v, want %v", got, want)
	}
}

func TestWriteJSONDoesNotModifyReport(t *testing.T) {
	r := Report{Host: HostReport{NICs: []NIC{{Name: "lo"}}}}
	if err := WriteJSON(&bytes.Buffer{}, r); err != nil {
		t.Fatal(err)
	}
	if r.Host.NICs[0].Addresses != nil || r.Host.Warnings != nil {
		t.Errorf("WriteJSON filled the caller's report: %+v", r.Host)
	}
}

type failWriter struct{ after int }

var errFull = errors.New("disk full")

func (f *failWriter) Write(b []byte) (int, error) {
	if f.after <= 0 {
		return 0, errFull
	}
	f.after--
	return len(b), nil
}

func TestWriteErrors(t *testing.T) {
	for _, after := range []int{0, 1, 3} {
		if err := WriteTable(&failWriter{after: after}, sampleReport()); !errors.Is(err, errFull) {
			t.Errorf("WriteTable with a writer that fails after %d writes = %v, want %v", after, err, errFull)
		}
		if err := WriteJSON(&failWriter{after: after}, sampleReport()); after == 0 && !errors.Is(err, errFull) {
			t.Errorf("WriteJSON with a failing writer = %v, want %v", err, errFull)
		}
	}
}

func TestUnits(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{bitRate(400e9), "400 Gb/s"},
		{bitRate(2500e6), "2.5 Gb/s"},
		{bitRate(100e6), "100 Mb/s"},
		{bitRate(0), "-"},
		{byteRate(48.25e9), "48.25 GB/s"},
		{byteRate(24.318234e9), "24.32 GB/s"},
		{byteRate(512), "512 B/s"},
		{latency(4210 * time.Nanosecond), "4.21µs"},
		{latency(12345678 * time.Nanosecond / 1000), "12.35µs"},
		{latency(2500 * time.Microsecond), "2.5ms"},
		{latency(0), "-"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	if !strings.Contains(node(-1), "-") || node(1) != "1" {
		t.Errorf("node(-1) = %q, node(1) = %q", node(-1), node(1))
	}
}
