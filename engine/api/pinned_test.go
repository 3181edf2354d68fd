package api

// The pinned-memory messages join the samples every layout test and fuzz
// target runs.
func init() {
	samples = append(samples,
		&PinnedMap{Region: 3, Size: 64 << 20},
		&PinnedUnmap{Region: 3},
		&MemcpyHtoDPinned{Dst: 0x1000, Region: 3, Offset: 4096, Size: 1 << 20, Stream: 7},
		&MemcpyDtoHPinned{Src: 0x2000, Region: 3, Offset: 0, Size: 1 << 20, Stream: DefaultStream(1)},
	)
}
