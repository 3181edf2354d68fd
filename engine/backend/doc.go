// Package backend defines the Device interface that an engine shard drives,
// and the small types around it. Implementations live in subpackages:
// cuda (real NVIDIA GPUs through libcuda, opened at run time) and host (a CPU
// emulation with real memory semantics, for development and CI).
//
// A backend knows devices, memory, streams, events and modules. It knows
// nothing of sessions, shares or the network: the engine validates every
// address and handle a client names before it reaches a backend, and it
// calls each Device from that device's shard thread only.
package backend
