package cuda_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/gpufabric/gpufabric/engine/backend/cuda"
	"github.com/gpufabric/gpufabric/engine/backend/host"
)

// A server opens the GPUs it has and falls back to the CPU emulation where
// there are none, saying why.
func ExampleOpen() {
	devs, err := cuda.Open(cuda.Options{})
	if errors.Is(err, cuda.ErrUnavailable) {
		log.Printf("no GPU backend: %v; using the host emulation", err)
		d, err := host.New(host.Config{MemorySize: 1 << 30})
		if err != nil {
			log.Fatal(err)
		}
		defer d.Close()
		fmt.Println(d.Info().Backend)
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range devs {
		info := d.Info()
		fmt.Println(info.Index, info.Name, info.PCIBusID)
		defer d.Close()
	}
}
