package bench

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// DescribeMachine describes this host: the CPU model (from /proc/cpuinfo),
// cores, memory, kernel, Go version and GOMAXPROCS. What cannot be read (on
// a system without /proc) is left empty.
func DescribeMachine() Machine {
	m := Machine{
		Cores:      runtime.NumCPU(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		GoVersion:  runtime.Version(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	m.CPU = cpuModel("/proc/cpuinfo")
	m.MemoryBytes = memTotal("/proc/meminfo")
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// cpuModel is the first model name in a cpuinfo file ("model name" on x86,
// "Model" or "Hardware" elsewhere).
func cpuModel(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var fallback string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch key {
		case "model name":
			return value
		case "Model", "Hardware":
			if fallback == "" {
				fallback = value
			}
		}
	}
	return fallback
}

// memTotal is MemTotal of a meminfo file, in bytes.
func memTotal(path string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				return 0
			}
			kib, err := strconv.ParseUint(fields[0], 10, 64)
			if err != nil {
				return 0
			}
			return kib << 10
		}
	}
	return 0
}
