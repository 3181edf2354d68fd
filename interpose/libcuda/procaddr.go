package main

// procVariant is one answer for a base name: symbolNames[symbol] from CUDA
// version `version` on.
type procVariant struct {
	version int
	symbol  int
}

// Results of resolveProc besides a symbol index.
const (
	procNotFound      = -1 // CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND
	procNotSufficient = -2 // CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
	procTooNew        = -3 // cudaVersion past the driver's: CUDA_ERROR_INVALID_VALUE
)

// The flags of cuGetProcAddress.
const (
	procFlagLegacyStream    = 1 // CU_GET_PROC_ADDRESS_LEGACY_STREAM
	procFlagPerThreadStream = 2 // CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM
)

// resolveProc answers cuGetProcAddress: the index in symbolNames of the
// symbol that base name `name` means for a caller built against CUDA
// `version`, with per-thread default-stream semantics when flags ask for
// them. driver is the driver's version, 0 when not known yet.
//
// Callers pass base names: "cuMemAlloc", never "cuMemAlloc_v2". The newest
// variant whose version the caller reaches wins (procTable is sorted oldest
// first); the plain name answers every version below the first variant.
func resolveProc(name string, version int, flags uint64, driver int) int {
	if driver > 0 && version > driver {
		return procTooNew
	}
	variants := procTable[name]
	if len(variants) == 0 {
		return procNotFound
	}
	sym := -1
	for _, v := range variants {
		if v.version <= version {
			sym = v.symbol
		}
	}
	if sym < 0 {
		return procNotSufficient
	}
	if flags&procFlagPerThreadStream != 0 {
		if twin := perThreadTwin[sym]; twin >= 0 {
			sym = int(twin)
		}
	}
	return sym
}
