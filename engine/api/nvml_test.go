package api

// The NVML messages join the samples every layout test and fuzz target runs.
func init() {
	samples = append(samples,
		&NVMLQuery{Ordinal: 1},
		&NVMLDevice{
			Source: NVMLSourceServer, DriverVersion: "570.86.10", NVMLVersion: "12.570.86.10",
			Serial: "1650924060041", VBIOS: "96.00.74.00.01",
			Supported: NVMLHasUtilization | NVMLHasECC, Quota: 1 << 30, SessionUsed: 4096, DeviceFree: 1 << 34,
			BAR1Total: 1 << 28, ECCErrors: [2][2]uint64{{1, 2}, {3, 4}}, Brand: 2, Architecture: 7,
			PCIDeviceID: 0x20b010de, Clocks: [4]uint32{1410, 1410, 1215, 1275}, PState: 0, AddressingMode: 1,
			EncoderUtil: 3, DecoderUtil: 4, CodecSamplingUs: 167000, PCIeTxKBps: 1200, PCIeRxKBps: 3400, MemoryBusWidth: 5120,
		},
	)
}
