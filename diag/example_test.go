package diag_test

import (
	"log"
	"os"
	"time"

	"github.com/gpufabric/gpufabric/diag"
)

func ExampleCollectHost() {
	host, err := diag.CollectHost()
	if err != nil {
		log.Print(err) // not Linux: only the hostname is known
	}
	if err := diag.WriteJSON(os.Stdout, diag.Report{Host: host}); err != nil {
		log.Fatal(err)
	}
}

// The server part is filled by the transport layer when diag is pointed at
// a GPU server; here by hand.
func ExampleWriteTable() {
	r := diag.Report{
		Host: diag.HostReport{
			Hostname:  "gpu-07",
			Kernel:    "6.8.0-45-generic",
			Arch:      "x86_64",
			BootID:    "1c9d5a5e-8f0b-4a57-9d7e-3b1f2f0c6a11",
			NUMANodes: []diag.NUMANode{{ID: 0, CPUs: "0-7", Distances: []int{10}}},
			NICs: []diag.NIC{{Name: "lo", Type: "device", OperState: "unknown", MTU: 65536,
				Addresses: []string{"127.0.0.1/8"}, NUMANode: -1}},
		},
		Server: &diag.ServerReport{
			Address: "gpu-08:7070",
			Candidates: []diag.Candidate{
				{Transport: "tcp", Endpoint: "10.1.0.8:7070", LatencyP50: 18 * time.Microsecond,
					LatencyP99: 41 * time.Microsecond, BandwidthBytesPerSec: 11.8e9},
			},
			CallLane: "tcp",
			BulkLane: "tcp",
			Reason:   "the only candidate",
		},
	}
	if err := diag.WriteTable(os.Stdout, r); err != nil {
		log.Fatal(err)
	}
	// Output:
	// HOST
	//   hostname  gpu-07
	//   kernel    6.8.0-45-generic x86_64
	//   boot id   1c9d5a5e-8f0b-4a57-9d7e-3b1f2f0c6a11
	//
	// NUMA NODES
	//   NODE  CPUS  DISTANCES
	//   0     0-7   10
	//
	// NICS
	//   NAME  TYPE    STATE    MTU    SPEED  NUMA  PCI  RDMA  MAC  ADDRESSES
	//   lo    device  unknown  65536  -      -     -    -     -    127.0.0.1/8
	//
	// RDMA DEVICES
	//   none
	//
	// GPUS
	//   none
	//
	// SERVER
	//   address    gpu-08:7070
	//   call lane  tcp
	//   bulk lane  tcp
	//   reason     the only candidate
	//
	// TRANSPORT CANDIDATES
	//   TRANSPORT  ENDPOINT       LATENCY P50  LATENCY P99  BANDWIDTH  ERROR
	//   tcp        10.1.0.8:7070  18µs         41µs         11.8 GB/s  -
}
