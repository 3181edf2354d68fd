package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// TestAuthorize plays sessions with good, bad and no credentials against a
// server whose Authorize hook backs one device with a bound share, beside
// a bystander the hook lets in.
func TestAuthorize(t *testing.T) {
	var released atomic.Int32
	hook := func(r engine.AttachRequest) (engine.Grant, error) {
		switch r.Credential {
		case "bystander":
			return engine.Grant{Device: 0, Key: "b"}, nil
		case "good":
			return engine.Grant{Device: 1, Bytes: 16 << 20, Key: "r1", Release: func() { released.Add(1) }}, nil
		case "bad-device":
			return engine.Grant{Device: 7}, nil
		}
		return engine.Grant{}, errors.New("no reservation backs this session")
	}
	f := newFixtureWith(t, engine.Config{Authorize: hook}, 2, 64<<20)
	dial := func(cred string) *interpose.Session {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := interpose.Dial(ctx, f.addr, interpose.Options{Client: t.Name(), Token: cred})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	ctx := context.Background()
	// The bystander, through the hook like everyone.
	byS := dial("bystander")
	byDev, err := byS.Attach(interpose.AnyDevice, interpose.Share{Fraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	byPtr, err := byDev.Alloc(1 << 20)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, cred string
		device     int
		share      interpose.Share
		want       string
	}{
		{"no credential", "", interpose.AnyDevice, interpose.Share{Fraction: 0.25}, "no reservation backs"},
		{"a device the grant does not name", "good", 0, interpose.Share{Fraction: 0.25}, "backs device 1, not 0"},
		{"more than the grant", "good", interpose.AnyDevice, interpose.Share{Bytes: 32 << 20}, "backs 16777216"},
		{"a device the server lacks", "bad-device", interpose.AnyDevice, interpose.Share{Fraction: 0.25}, "names device 7"},
	} {
		s := dial(tc.cred)
		_, err := s.Attach(tc.device, tc.share)
		var r api.Result
		if !errors.As(err, &r) || (r != api.ErrNotPermitted && r != api.ErrInvalidDevice) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a refusal saying %q", tc.name, err, tc.want)
		}
		s.Close()
	}
	if n := released.Load(); n != 2 {
		t.Fatalf("grants released after refusals: %d, want 2 (each refused after the hook granted)", n)
	}

	s := dial("good")
	d, err := s.Attach(interpose.AnyDevice, interpose.Share{Bytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if d.ServerIndex() != 1 {
		t.Fatalf("attached device %d: want 1, the one the grant backs", d.ServerIndex())
	}
	if _, err := d.Alloc(8 << 20); err != nil {
		t.Fatal(err)
	}
	// The grant is revoked (its reservation ended): the session is cut,
	// its next call fails, its grant is released; the bystander goes on.
	if n := f.srv.Revoke("r1", errors.New("reservation r1 reached its time limit")); n != 1 {
		t.Fatalf("Revoke ended %d sessions, want 1", n)
	}
	waitFor(t, func() bool { return released.Load() == 3 }) // the revoked session's grant is released
	if _, err := d.Alloc(1 << 20); err == nil {
		t.Fatal("a revoked session's call succeeded")
	}
	if err := byDev.Memset(byPtr, 7, 1, 1<<20); err != nil {
		t.Fatalf("bystander after the revocation: %v", err)
	}
	if err := byS.CloseContext(ctx); err != nil {
		t.Fatalf("bystander: %v", err)
	}
}
