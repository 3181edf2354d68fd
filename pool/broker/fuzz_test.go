package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// FuzzDecodeRequest feeds the reserve call's decoder what a client may
// send: it refuses with ErrBadRequest or yields a request that survives
// a round trip, never panics; the body read in pieces decodes the same.
func FuzzDecodeRequest(f *testing.F) {
	good, _ := json.Marshal(Request{N: 2, Fraction: 0.5, TTL: 10 * time.Second, Node: -1})
	for _, s := range []string{string(good), `{}`, `{"n":1,"ttl":1000000000,"policy":9}`, `{"n":1}{"n":2}`, `{"n":"x"}`, `{"bogus":1}`, `[`, strings.Repeat(" ", maxBody+1) + `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var whole Request
		err := decodeBody(bytes.NewReader(body), &whole)
		var halves Request
		errHalves := decodeBody(iotest.HalfReader(io.MultiReader(bytes.NewReader(body[:len(body)/2]), bytes.NewReader(body[len(body)/2:]))), &halves)
		if (err == nil) != (errHalves == nil) || whole != halves {
			t.Fatalf("whole %+v (%v), in pieces %+v (%v)", whole, err, halves, errHalves)
		}
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("a refusal that is not ErrBadRequest: %v", err)
			}
			return
		}
		if err := whole.check(); err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("a check that is not ErrBadRequest: %v", err)
			}
			return
		}
		again, _ := json.Marshal(whole)
		var back Request
		if err := decodeBody(bytes.NewReader(again), &back); err != nil || back != whole {
			t.Fatalf("round trip: %+v → %s → %+v (%v)", whole, again, back, err)
		}
	})
}
