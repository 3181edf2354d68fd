package engine_test

import (
	"os"
	"testing"

	"github.com/gpufabric/gpufabric/bench"
)

func TestMain(m *testing.M) {
	bench.ServeFloorChild() // the echo side of the benchmarks' two-process floor
	os.Exit(m.Run())
}
