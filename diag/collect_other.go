//go:build !linux

package diag

import "fmt"

func collectPlatform(r *HostReport) error {
	err := fmt.Errorf("diag: kernel, NUMA, NIC, RDMA and GPU discovery: %w", ErrNotSupported)
	r.warn(err)
	return err
}
