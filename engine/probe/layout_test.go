package probe

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

func TestHistogramQuantileAndMean(t *testing.T) {
	var h Histogram
	if h.Mean() != 0 || h.Quantile(0.5) != 0 {
		t.Fatalf("empty histogram: mean %v p50 %v", h.Mean(), h.Quantile(0.5))
	}
	// 90 values of 1000ns (bucket 9: [512, 1024)) and 10 of 1ms (bucket 19).
	h.Buckets[9], h.Buckets[19] = 90, 10
	h.Count, h.Sum = 100, 90*1000+10*1_000_000
	for _, tc := range []struct {
		q      float64
		lo, hi time.Duration
	}{
		{0, 512, 512},
		{0.5, 512, 1024},
		{0.9, 1023, 1024},
		{0.95, 1 << 19, 1 << 20},
		{1, 1 << 20, 1 << 20},
		{-1, 512, 512},
		{2, 1 << 20, 1 << 20},
	} {
		if got := h.Quantile(tc.q); got < tc.lo || got > tc.hi {
			t.Errorf("Quantile(%v) = %v, want in [%v, %v]", tc.q, got, tc.lo, tc.hi)
		}
	}
	if got, want := h.Mean(), time.Duration((90*1000+10*1_000_000)/100); got != want {
		t.Errorf("Mean = %v, want %v", got, want)
	}
	d := h.Sub(Histogram{Buckets: [NumBuckets]uint64{9: 40}, Count: 40, Sum: 40 * 1000})
	if d.Count != 60 || d.Buckets[9] != 50 || d.Buckets[19] != 10 {
		t.Errorf("Sub: %+v", d)
	}
	if s := d.Add(Histogram{Buckets: [NumBuckets]uint64{9: 40}, Count: 40, Sum: 40 * 1000}); s != h {
		t.Errorf("Add(Sub) = %+v, want %+v", s, h)
	}
	// A counter that went backwards counts from zero.
	if d := (Histogram{Count: 3}).Sub(Histogram{Count: 5}); d.Count != 3 {
		t.Errorf("Sub backwards: %d", d.Count)
	}
	// The top bucket does not overflow a Duration.
	top := Histogram{Count: 1}
	top.Buckets[NumBuckets-1] = 1
	if q := top.Quantile(1); q <= 0 {
		t.Errorf("top bucket quantile %v", q)
	}
}

func encodeHist(h Histogram) []byte {
	b := make([]byte, histSize)
	for i, n := range h.Buckets {
		binary.NativeEndian.PutUint64(b[i*8:], n)
	}
	binary.NativeEndian.PutUint64(b[NumBuckets*8:], h.Count)
	binary.NativeEndian.PutUint64(b[NumBuckets*8+8:], h.Sum)
	return b
}

func TestDecodeTable(t *testing.T) {
	h := Histogram{Count: 3, Sum: 7}
	h.Buckets[0], h.Buckets[2], h.Buckets[63] = 1, 1, 1
	got, err := decodePerCPUHist([][]byte{encodeHist(h), encodeHist(h)})
	if err != nil || got != h.Add(h) {
		t.Fatalf("per-CPU sum: %+v, %v", got, err)
	}
	if _, err := decodePerCPUHist([][]byte{encodeHist(h), make([]byte, histSize-8)}); err == nil {
		t.Error("a short per-CPU value decoded")
	}

	key := make([]byte, connKeySize)
	copy(key[0:], []byte{127, 0, 0, 1})
	copy(key[16:], []byte{10, 1, 2, 3})
	binary.NativeEndian.PutUint16(key[32:], 7070)
	binary.NativeEndian.PutUint16(key[34:], 40000)
	binary.NativeEndian.PutUint16(key[36:], afInet)
	k, err := decodeConnKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("127.0.0.1:7070"); k.local != want {
		t.Errorf("local %v, want %v", k.local, want)
	}
	if want := netip.MustParseAddrPort("10.1.2.3:40000"); k.remote != want {
		t.Errorf("remote %v, want %v", k.remote, want)
	}
	a6 := netip.MustParseAddr("fe80::1")
	b6 := a6.As16()
	copy(key[0:], b6[:])
	binary.NativeEndian.PutUint16(key[36:], afInet6)
	if k, err := decodeConnKey(key); err != nil || k.local.Addr() != a6 {
		t.Errorf("IPv6 key: %v, %v", k, err)
	}
	m := netip.MustParseAddr("::ffff:192.0.2.7").As16()
	copy(key[16:], m[:])
	if k, err := decodeConnKey(key); err != nil || k.remote.Addr() != netip.MustParseAddr("192.0.2.7") {
		t.Errorf("v4-mapped key: %v, %v, want 192.0.2.7 unmapped", k, err)
	}
	binary.NativeEndian.PutUint16(key[36:], 1)
	if _, err := decodeConnKey(key); err == nil {
		t.Error("a key of family AF_UNIX decoded")
	}

	val := make([]byte, connValSize)
	copy(val, encodeHist(h))
	binary.NativeEndian.PutUint64(val[histSize:], 4)        // retransmits
	binary.NativeEndian.PutUint64(val[histSize+8:], 99)     // last_ns
	binary.NativeEndian.PutUint32(val[histSize+16:], 25)    // srtt_us
	binary.NativeEndian.PutUint32(val[histSize+20:], 1<<20) // snd_queue
	binary.NativeEndian.PutUint32(val[histSize+24:], 17)    // rcv_queue
	binary.NativeEndian.PutUint32(val[histSize+28:], 10)    // snd_cwnd
	v, err := decodeConnVal(val)
	if err != nil {
		t.Fatal(err)
	}
	want := connVal{srtt: h, retransmits: 4, lastNS: 99, srttUS: 25, sndQueue: 1 << 20, rcvQueue: 17, sndCwnd: 10}
	if v != want {
		t.Errorf("value %+v, want %+v", v, want)
	}
	if _, err := decodeConnVal(val[:connValSize-1]); err == nil {
		t.Error("a short value decoded")
	}
}

// FuzzDecode: no input makes decoding panic, and what decodes keeps its
// invariants.
func FuzzDecode(f *testing.F) {
	f.Add(make([]byte, connKeySize+connValSize))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := decodeHist(b); err == nil && len(b) != histSize {
			t.Fatalf("decoded %d bytes as a histogram: %+v", len(b), h)
		}
		if k, err := decodeConnKey(b); err == nil {
			if !k.local.IsValid() || !k.remote.IsValid() || k.local.Addr().Is4In6() || k.remote.Addr().Is4In6() {
				t.Fatalf("bad key %+v", k)
			}
		}
		if len(b) >= connKeySize {
			decodeConnKey(b[:connKeySize])
			if len(b) >= connKeySize+connValSize {
				decodeConnVal(b[connKeySize : connKeySize+connValSize])
			}
		}
		decodeConnVal(b)
		var h Histogram
		for i := 0; i+8 <= len(b) && i/8 < NumBuckets; i += 8 {
			h.Buckets[i/8] = binary.NativeEndian.Uint64(b[i:]) >> 8
		}
		for _, q := range []float64{0, 0.5, 0.9, 0.99, 1} {
			if d := h.Quantile(q); d < 0 {
				t.Fatalf("Quantile(%v) = %v < 0", q, d)
			}
		}
	})
}
