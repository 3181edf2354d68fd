// Package e2e holds the end-to-end tests of the fabric: they start real
// `gpufabric server` processes on loopback (host backend) and run the C
// examples under `gpufabric run`, through the interposer library.
//
// The tests build nothing: they use build/bin/gpufabric, build/lib (the
// interposer as libcuda.so.1 and libnvidia-ml.so.1) and build/examples,
// which `make build` produces (`make test` builds first), and skip with the
// reason when those are missing.
package e2e
