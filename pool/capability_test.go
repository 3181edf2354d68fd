package pool

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParseCapability feeds the capability decoder what a client may send:
// it never panics, and accepts nothing the key did not sign.
func FuzzParseCapability(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	good, err := Capability(key, Reservation{ID: "r1", Nonce: "n", Holds: []Hold{{Server: "a", Device: 0, Bytes: 1 << 20}}}, "a")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(capPrefix)
	f.Add(capPrefix + "e30.")
	f.Add(good[:len(good)/2])
	f.Add("gftok_abc")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCapability(key, s, time.Unix(0, 0))
		if err != nil {
			if !errors.Is(err, ErrBadCapability) {
				t.Fatalf("an error that is not ErrBadCapability: %v", err)
			}
			return
		}
		if s != good && !strings.HasPrefix(s, good[:strings.LastIndexByte(good, '.')]) {
			t.Fatalf("accepted a capability the key did not sign: %q → %+v", s, c)
		}
		if len(c.Devices) == 0 || len(c.Devices) != len(c.Bytes) {
			t.Fatalf("accepted malformed claims %+v", c)
		}
	})
}
