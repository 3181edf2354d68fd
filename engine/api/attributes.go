package api

// Device attributes (CUdevice_attribute values from cuda.h) that the fabric
// fills in its snapshots. The snapshot is indexed by these values.
const (
	AttrMaxThreadsPerBlock           = 1
	AttrMaxBlockDimX                 = 2
	AttrMaxBlockDimY                 = 3
	AttrMaxBlockDimZ                 = 4
	AttrMaxGridDimX                  = 5
	AttrMaxGridDimY                  = 6
	AttrMaxGridDimZ                  = 7
	AttrMaxSharedMemoryPerBlock      = 8
	AttrTotalConstantMemory          = 9
	AttrWarpSize                     = 10
	AttrMaxPitch                     = 11
	AttrMaxRegistersPerBlock         = 12
	AttrClockRate                    = 13
	AttrTextureAlignment             = 14
	AttrGPUOverlap                   = 15
	AttrMultiprocessorCount          = 16
	AttrKernelExecTimeout            = 17
	AttrIntegrated                   = 18
	AttrCanMapHostMemory             = 19
	AttrComputeMode                  = 20
	AttrConcurrentKernels            = 31
	AttrECCEnabled                   = 32
	AttrPCIBusID                     = 33
	AttrPCIDeviceID                  = 34
	AttrMemoryClockRate              = 36
	AttrGlobalMemoryBusWidth         = 37
	AttrL2CacheSize                  = 38
	AttrMaxThreadsPerMultiprocessor  = 39
	AttrAsyncEngineCount             = 40
	AttrUnifiedAddressing            = 41
	AttrPCIDomainID                  = 50
	AttrComputeCapabilityMajor       = 75
	AttrComputeCapabilityMinor       = 76
	AttrManagedMemory                = 83
	AttrConcurrentManagedAccess      = 89
	AttrMaxSharedMemoryPerBlockOptin = 97

	// AttrCount bounds the snapshot: attributes at or above it are not kept.
	AttrCount = 160
)
