//go:build cgo

package cuda

// stubReason is empty: this build tries the driver.
func stubReason() string { return "" }

// forgetDriver lets the next Open load another library (a fake, then the
// system's). Only for tests, and only with every device closed: the shim's
// function table is replaced under any device still open.
func forgetDriver() {
	driver.Lock()
	driver.path = ""
	driver.Unlock()
}
