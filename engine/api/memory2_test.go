package api

func init() {
	samples = append(samples,
		&Memcpy3D{Kind: Copy3DDtoD, Dst: Pitched{Ptr: 0x1000, Pitch: 512, Rows: 8}, Src: Pitched{Ptr: 0x9000, Pitch: 256, Rows: 4}, Width: 100, Height: 4, Depth: 2, Stream: 3},
		&MemAddressReserve{Ordinal: 1, Size: 64 << 20, Align: 2 << 20},
		&MemAddressFree{Ptr: 0x7000_0000_0000, Size: 64 << 20},
		&MemCreate{Handle: 9, Ordinal: 1, Size: 2 << 20},
		&MemRelease{Handle: 9},
		&MemMap{Ptr: 0x7000_0020_0000, Size: 2 << 20, Offset: 0, Handle: 9},
		&MemUnmap{Ptr: 0x7000_0020_0000, Size: 2 << 20},
		&MemcpyPeer{Dst: 0x1000, Src: 0x2000, DstOrdinal: 1, SrcOrdinal: 0, Size: 4096, Stream: 7},
		&IpcGetMemHandle{Ptr: 0x5000},
		&IpcMemHandle{Key: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, Device: 3},
		&IpcOpenMemHandle{Handle: IpcMemHandle{Key: [16]byte{9, 8, 7}, Device: 1}},
		&IpcOpened{Ptr: 0x5000, Size: 4096, Ordinal: 1},
		&IpcCloseMemHandle{Ptr: 0x5000},
		&IpcGetEventHandle{Event: 4},
		&IpcOpenEventHandle{Event: 5, Handle: IpcMemHandle{Key: [16]byte{7}, Device: 2}},
		&Memset2D{Dst: 0x2000, Pitch: 512, Value: 0xab, ElemSize: 1, Width: 300, Height: 7, Stream: DefaultStream(1)},
	)
}
