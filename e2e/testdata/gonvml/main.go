// Command gonvml runs go-nvml's own bindings against whatever
// libnvidia-ml.so.1 the dynamic linker finds (under `gpufabric run`, the
// interposer): the calls a Go monitoring agent makes, printed one a line.
package main

import (
	"fmt"
	"os"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

func main() {
	lib := nvml.New()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		fmt.Println("FAIL: Init:", ret)
		os.Exit(1)
	}
	defer lib.Shutdown()
	driver, ret := lib.SystemGetDriverVersion()
	fmt.Println("driver", driver, ret)
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS || n < 1 {
		fmt.Println("FAIL: DeviceGetCount:", n, ret)
		os.Exit(1)
	}
	dev, ret := lib.DeviceGetHandleByIndex(0)
	if ret != nvml.SUCCESS {
		fmt.Println("FAIL: DeviceGetHandleByIndex:", ret)
		os.Exit(1)
	}
	name, _ := dev.GetName()
	mem, ret := dev.GetMemoryInfo()
	fmt.Println("memory", mem.Total, mem.Used, ret)
	procs, ret := dev.GetComputeRunningProcesses()
	fmt.Println("processes", len(procs), ret)
	temp, ret := dev.GetTemperature(nvml.TEMPERATURE_GPU)
	fmt.Println("temperature", temp, ret)
	_, ret = dev.GetBoardPartNumber()
	fmt.Println("board part number", ret)
	fmt.Println("gonvml: ok", name)
}
