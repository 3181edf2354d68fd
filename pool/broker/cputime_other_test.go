//go:build !unix

package broker

import "time"

// cpuTime is unknown here: the benchmark reports zero CPU.
func cpuTime() time.Duration { return 0 }
