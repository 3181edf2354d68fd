// Package diag collects and renders the operator's view of the fabric, the
// report behind `gpufabric diag`.
//
// A [Report] has two parts. The host part, [HostReport], is what this
// machine offers the fabric: its identity (hostname, kernel, boot ID: two
// peers with one boot ID share a kernel and may use shared memory), its
// NUMA nodes, its network interfaces and RDMA devices, and its GPUs with
// the NIC nearest each. [CollectHost] fills it. The server part,
// [ServerReport], is what a connection to one GPU server found: every
// transport candidate with its measured latency and bandwidth or why it
// failed, and the lanes chosen and why. The transport layer fills it; this
// package only holds and renders it.
//
// Collection is best effort: a source that cannot be read (no netlink in a
// sandbox, no RDMA driver) becomes a line in HostReport.Warnings, and the
// rest of the report is still there. That is the point of a diagnostic.
//
// [WriteTable] renders for people, with readable units; [WriteJSON] renders
// for programs, with snake_case field names and base units (seconds,
// bytes per second, bits per second), and its field names are stable.
//
// The package reads; it configures nothing and opens no GPU.
package diag
