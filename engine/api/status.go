package api

import "time"

// Status is the server's state as ServerStatus returns it (JSON in the
// reply's payload): what `gpufabric smi` shows. Sizes are bytes, ratios 0–1.
type Status struct {
	Server   string          `json:"server"`
	Version  uint16          `json:"version"`
	Started  time.Time       `json:"started"`
	Devices  []DeviceStatus  `json:"devices"`
	Sessions []SessionStatus `json:"sessions"`
}

// DeviceStatus is one device of the server.
type DeviceStatus struct {
	Index         int    `json:"index"`
	Name          string `json:"name"`
	UUID          string `json:"uuid"`
	Backend       string `json:"backend"`
	Emulated      bool   `json:"emulated"`
	PCIBusID      string `json:"pci_bus_id,omitempty"`
	TotalBytes    uint64 `json:"total_bytes"`
	FreeBytes     uint64 `json:"free_bytes"`     // as the device reports it
	ReservedBytes uint64 `json:"reserved_bytes"` // sum of the shares of attached sessions
	SessionBytes  uint64 `json:"session_bytes"`  // allocated by sessions of this server
	OtherBytes    uint64 `json:"other_bytes"`    // in use but not by our sessions (other processes, the driver)
	Sessions      int    `json:"sessions"`
	// Live state where the backend reports it; negative when unknown.
	Utilization  float64 `json:"utilization"`
	TemperatureC float64 `json:"temperature_celsius"`
	PowerWatts   float64 `json:"power_watts"`
	Healthy      bool    `json:"healthy"`
	Health       string  `json:"health,omitempty"`
}

// SessionStatus is one session and what it holds.
type SessionStatus struct {
	ID        uint64                `json:"id"`
	Client    string                `json:"client"`
	Remote    string                `json:"remote"`
	Transport string                `json:"transport"`
	Selection string                `json:"selection,omitempty"`
	Started   time.Time             `json:"started"`
	Devices   []SessionDeviceStatus `json:"devices"`
	Streams   int                   `json:"streams"`
	Events    int                   `json:"events"`
	Modules   int                   `json:"modules"`
	// Inflight is the work the session has queued on the server and not
	// seen finish: tasks waiting for a shard and operations on its streams.
	Inflight int64 `json:"inflight"`
	// Outbox is how long the session's replies have waited for its client
	// to read them; zero when none wait.
	Outbox time.Duration `json:"outbox_wait_ns"`
	// StagingBytes is the session's staging budget in use: payloads being
	// received or waiting to be copied to a device.
	StagingBytes int64 `json:"staging_bytes"`
}

// SessionDeviceStatus is a session's hold on one device.
type SessionDeviceStatus struct {
	Ordinal     uint32 `json:"ordinal"`
	Device      int    `json:"device"`
	QuotaBytes  uint64 `json:"quota_bytes"`
	UsedBytes   uint64 `json:"used_bytes"`
	Allocations int    `json:"allocations"`
}
