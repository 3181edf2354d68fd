package api

// NVML's view of a session device travels in one message, so that an NVML
// client's monitoring loop (a dozen fields a second) costs one round trip,
// not one per field. The client caches it briefly; see interpose/libcuda.

// NVMLQuery asks for the NVML view of a session device.
type NVMLQuery struct{ Ordinal uint32 }

// NVML field groups a device may lack (NVMLDevice.Supported): a reading of
// a group not set is answered NVML_ERROR_NOT_SUPPORTED, as NVML answers for
// a feature the GPU lacks.
const (
	NVMLHasUtilization uint64 = 1 << iota
	NVMLHasTemperature
	NVMLHasTemperatureThresholds
	NVMLHasPower
	NVMLHasPowerLimits
	NVMLHasEnergy
	NVMLHasClocks
	NVMLHasMaxClocks
	NVMLHasFan
	NVMLHasECC
	NVMLHasPState
	NVMLHasPersistence
	NVMLHasComputeMode
	NVMLHasSerial
	NVMLHasVBIOS
	NVMLHasBrand
	NVMLHasArchitecture
	NVMLHasMinorNumber
	NVMLHasPCIe
	NVMLHasBAR1
	NVMLHasClocksEventReasons
	NVMLHasEvents
	NVMLHasAddressingMode
	NVMLHasPCIIDs
	NVMLHasCodecUtilization
	NVMLHasPCIeThroughput
	NVMLHasMemoryBusWidth
)

// NVML sources (NVMLDevice.Source).
const (
	NVMLSourceServer   = "nvml"     // read from the server's NVML
	NVMLSourceEmulated = "emulated" // the host backend's labelled values
	NVMLSourceNone     = "none"     // the device has no NVML view
)

// NVMLDevice answers NVMLQuery. Numeric fields are NVML's own units and
// enumerations (milliwatts, MHz, °C, nvmlBrandType_t, nvmlPstates_t, ...);
// Clocks are indexed by nvmlClockType_t (graphics, SM, memory, video);
// ECCErrors by nvmlMemoryErrorType_t then nvmlEccCounterType_t.
//
// The memory figures are the session's share, never the card's: Quota is
// the share, SessionUsed what the session holds on the device, DeviceFree
// what the whole device has free.
type NVMLDevice struct {
	Source        string
	DriverVersion string // the driver's numeric form, "570.86.10"
	NVMLVersion   string // "12.570.86.10"
	Serial        string
	VBIOS         string

	Supported uint64

	Quota, SessionUsed, DeviceFree uint64
	BAR1Total, BAR1Used            uint64
	EnergyMillijoules              uint64
	ClocksEventReasons             uint64
	SupportedEvents                uint64
	ECCErrors                      [2][2]uint64

	Brand, Architecture, MinorNumber                     uint32
	PCIDeviceID, PCISubsystemID                          uint32
	PCIeGenMax, PCIeGenCur, PCIeWidthMax, PCIeWidthCur   uint32
	UtilGPU, UtilMemory                                  uint32
	TemperatureC, SlowdownC, ShutdownC                   uint32
	PowerMilliwatts, PowerLimit, PowerDefaultLimit       uint32
	PowerMinLimit, PowerMaxLimit, PowerEnforcedLimit     uint32
	Clocks, MaxClocks                                    [4]uint32
	FanPercent, Fans                                     uint32
	ECCCurrent, ECCPending                               uint32
	PState, PersistenceMode, ComputeMode, AddressingMode uint32
	EncoderUtil, DecoderUtil, CodecSamplingUs            uint32
	PCIeTxKBps, PCIeRxKBps, MemoryBusWidth               uint32
}

func (*NVMLQuery) Op() Op              { return OpNVMLQuery }
func (m *NVMLQuery) Encode(e *Encoder) { e.U32(m.Ordinal) }
func (m *NVMLQuery) Decode(d *Decoder) { m.Ordinal = d.U32() }

func (*NVMLDevice) Op() Op { return OpNVMLQuery }

// The fields in wire order: one list that Encode and Decode share, so the
// two cannot disagree.
func (m *NVMLDevice) strings() []*string {
	return []*string{&m.Source, &m.DriverVersion, &m.NVMLVersion, &m.Serial, &m.VBIOS}
}

func (m *NVMLDevice) u64s() []*uint64 {
	return []*uint64{&m.Supported, &m.Quota, &m.SessionUsed, &m.DeviceFree, &m.BAR1Total, &m.BAR1Used,
		&m.EnergyMillijoules, &m.ClocksEventReasons, &m.SupportedEvents,
		&m.ECCErrors[0][0], &m.ECCErrors[0][1], &m.ECCErrors[1][0], &m.ECCErrors[1][1]}
}

func (m *NVMLDevice) u32s() []*uint32 {
	return []*uint32{&m.Brand, &m.Architecture, &m.MinorNumber, &m.PCIDeviceID, &m.PCISubsystemID,
		&m.PCIeGenMax, &m.PCIeGenCur, &m.PCIeWidthMax, &m.PCIeWidthCur, &m.UtilGPU, &m.UtilMemory,
		&m.TemperatureC, &m.SlowdownC, &m.ShutdownC, &m.PowerMilliwatts, &m.PowerLimit, &m.PowerDefaultLimit,
		&m.PowerMinLimit, &m.PowerMaxLimit, &m.PowerEnforcedLimit,
		&m.Clocks[0], &m.Clocks[1], &m.Clocks[2], &m.Clocks[3],
		&m.MaxClocks[0], &m.MaxClocks[1], &m.MaxClocks[2], &m.MaxClocks[3],
		&m.FanPercent, &m.Fans, &m.ECCCurrent, &m.ECCPending,
		&m.PState, &m.PersistenceMode, &m.ComputeMode, &m.AddressingMode,
		&m.EncoderUtil, &m.DecoderUtil, &m.CodecSamplingUs, &m.PCIeTxKBps, &m.PCIeRxKBps, &m.MemoryBusWidth}
}

func (m *NVMLDevice) Encode(e *Encoder) {
	for _, s := range m.strings() {
		e.String(*s)
	}
	for _, v := range m.u64s() {
		e.U64(*v)
	}
	for _, v := range m.u32s() {
		e.U32(*v)
	}
}

func (m *NVMLDevice) Decode(d *Decoder) {
	for _, s := range m.strings() {
		*s = d.String()
	}
	for _, v := range m.u64s() {
		*v = d.U64()
	}
	for _, v := range m.u32s() {
		*v = d.U32()
	}
}
