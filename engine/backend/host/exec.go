package host

import (
	"encoding/binary"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

var (
	_ backend.Holder      = (*stream)(nil)
	_ backend.ValueStream = (*stream)(nil)
)

// Hold blocks the stream's worker, and so everything queued after it,
// until release is closed or the stream is cancelled.
func (s *stream) Hold(release <-chan struct{}) error {
	return s.enqueue(func() error {
		select {
		case <-release:
		case <-s.stop.done:
		}
		return nil
	})
}

// word is the 4- or 8-byte word at ptr, checked when the operation is
// queued as every other operation's operands are.
func (s *stream) word(ptr backend.DevicePtr, size int, flags uint32, wait bool) ([]byte, error) {
	if err := backend.CheckValueOp(ptr, size, flags, wait); err != nil {
		return nil, err
	}
	return s.dev.bytes(ptr, uint64(size))
}

func (s *stream) WriteValue(ptr backend.DevicePtr, value uint64, size int) error {
	b, err := s.word(ptr, size, 0, false)
	if err != nil {
		return err
	}
	return s.enqueue(func() error {
		s.dev.words.Lock()
		if size == 4 {
			binary.LittleEndian.PutUint32(b, uint32(value))
		} else {
			binary.LittleEndian.PutUint64(b, value)
		}
		s.dev.words.Unlock()
		return nil
	})
}

// Longest pause between two looks at a waited word: a GPU front end polls
// in hardware; an emulation that sleeps a millisecond at most stays cheap
// and still answers quickly.
const (
	firstPoll = 20 * time.Microsecond
	maxPoll   = time.Millisecond
)

func (s *stream) WaitValue(ptr backend.DevicePtr, value uint64, size int, flags uint32) error {
	b, err := s.word(ptr, size, flags, true)
	if err != nil {
		return err
	}
	cmp := flags &^ api.WaitFlush
	return s.enqueue(func() error {
		pause := firstPoll
		var timer *time.Timer
		for {
			s.dev.words.Lock()
			var v uint64
			if size == 4 {
				v = uint64(binary.LittleEndian.Uint32(b))
			} else {
				v = binary.LittleEndian.Uint64(b)
			}
			s.dev.words.Unlock()
			if api.WaitSatisfied(cmp, v, value, size) {
				return nil
			}
			if timer == nil {
				timer = time.NewTimer(pause)
				defer timer.Stop()
			} else {
				timer.Reset(pause)
			}
			select {
			case <-timer.C:
			case <-s.stop.done:
				return nil
			}
			pause = min(2*pause, maxPoll)
		}
	})
}
