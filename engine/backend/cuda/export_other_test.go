//go:build !linux || !cgo

package cuda

// stubReason is what this build's Open says instead of trying a driver.
func stubReason() string { return why() }

func forgetDriver() {}
