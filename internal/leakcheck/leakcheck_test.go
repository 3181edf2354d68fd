package leakcheck

import (
	"io"
	"os"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	before := Take()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { <-stop; close(done) }()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	if err := before.Check(io.Discard, 50*time.Millisecond); err == nil {
		t.Fatal("a leaked goroutine and file went unnoticed")
	}
	close(stop)
	<-done
	f.Close()
	if err := before.Check(io.Discard, time.Second); err != nil {
		t.Fatalf("nothing leaks any more, yet: %v", err)
	}
}
