package host

import (
	"bytes"
	"fmt"
	"os"
	"testing"
)

// bigPTX builds PTX-like images of about size bytes, in the shapes a
// tenant can send: the examples' module repeated with renamed entries, one
// huge comment, and one huge entry body.
func bigPTX(tb testing.TB, shape string, size int) []byte {
	tb.Helper()
	base, err := os.ReadFile("../../../examples/kernels.ptx")
	if err != nil {
		tb.Fatal(err)
	}
	head := []byte(".version 7.0\n.target sm_80\n.address_size 64\n")
	var b bytes.Buffer
	b.Grow(size + len(base))
	b.Write(head)
	switch shape {
	case "entries":
		for i := 0; b.Len() < size; i++ {
			fmt.Fprintf(&b, ".visible .global .align 4 .b8 g%d[4];\n", i)
			b.Write(bytes.ReplaceAll(base, []byte(".entry "), fmt.Appendf(nil, ".entry r%d_", i)))
		}
	case "comment":
		b.WriteString("/*")
		for b.Len() < size {
			b.WriteString(" .entry fake(.param .u32 x) { } // .global .b8 y[1]; ")
		}
		b.WriteString("*/\n")
		b.Write(base)
	case "body":
		b.WriteString(".visible .entry spin(.param .u64 ns)\n{\n")
		for b.Len() < size {
			b.WriteString("\tadd.s64 %rd4, %rd3, %rd2; // { nothing }\n")
		}
		b.WriteString("}\n")
	}
	return b.Bytes()
}

// BenchmarkParsePTX100MiB is the parse a module load pays for a 100 MiB
// image, for each shape; it must stay linear and fast, since a load
// occupies a goroutine for its duration (off the shard when the engine
// uses PrepareModule, on it before).
func BenchmarkParsePTX100MiB(b *testing.B) {
	for _, shape := range []string{"entries", "comment", "body"} {
		b.Run(shape, func(b *testing.B) {
			image := bigPTX(b, shape, 100<<20)
			b.SetBytes(int64(len(image)))
			b.ResetTimer()
			for range b.N {
				if _, _, err := parsePTX(image); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoadPrepared100MiB is what the shard pays for a prepared 100
// MiB module (some 90 000 entries and 15 000 globals): the globals'
// allocation and nothing of the parse.
func BenchmarkLoadPrepared100MiB(b *testing.B) {
	d, err := New(Config{MemorySize: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	p, err := d.PrepareModule(bigPTX(b, "entries", 100<<20))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		m, err := d.LoadPrepared(p)
		if err != nil {
			b.Fatal(err)
		}
		m.Unload()
	}
}
