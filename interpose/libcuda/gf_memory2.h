// gf_memory2.h: the driver API types of the pitched and 2D/3D memory and
// stream-ordered allocation families, with their real ABI (written from
// the public API reference).
#ifndef GF_MEMORY2_H
#define GF_MEMORY2_H

#include "gf.h"

typedef struct CUarray_st *CUarray;
typedef struct CUmemPoolHandle_st *CUmemoryPool;

// CUmemorytype
enum {
	GF_MEMORYTYPE_HOST = 1,
	GF_MEMORYTYPE_DEVICE = 2,
	GF_MEMORYTYPE_ARRAY = 3,
	GF_MEMORYTYPE_UNIFIED = 4,
};

typedef struct CUDA_MEMCPY2D_st {
	size_t srcXInBytes, srcY;
	int srcMemoryType;
	const void *srcHost;
	CUdeviceptr srcDevice;
	CUarray srcArray;
	size_t srcPitch;
	size_t dstXInBytes, dstY;
	int dstMemoryType;
	void *dstHost;
	CUdeviceptr dstDevice;
	CUarray dstArray;
	size_t dstPitch;
	size_t WidthInBytes, Height;
} CUDA_MEMCPY2D;

typedef struct CUDA_MEMCPY3D_st {
	size_t srcXInBytes, srcY, srcZ, srcLOD;
	int srcMemoryType;
	const void *srcHost;
	CUdeviceptr srcDevice;
	CUarray srcArray;
	void *reserved0;
	size_t srcPitch, srcHeight;
	size_t dstXInBytes, dstY, dstZ, dstLOD;
	int dstMemoryType;
	void *dstHost;
	CUdeviceptr dstDevice;
	CUarray dstArray;
	void *reserved1;
	size_t dstPitch, dstHeight;
	size_t WidthInBytes, Height, Depth;
} CUDA_MEMCPY3D;

// Virtual memory management.
typedef unsigned long long CUmemGenericAllocationHandle;

typedef struct CUmemLocation_st {
	int type; // CU_MEM_LOCATION_TYPE_DEVICE = 1
	int id;
} CUmemLocation;

typedef struct CUmemAllocationProp_st {
	int type;                 // CU_MEM_ALLOCATION_TYPE_PINNED = 1
	int requestedHandleTypes; // CUmemAllocationHandleType
	CUmemLocation location;
	void *win32HandleMetaData;
	struct {
		unsigned char compressionType;
		unsigned char gpuDirectRDMACapable;
		unsigned short usage;
		unsigned char reserved[4];
	} allocFlags;
} CUmemAllocationProp;

typedef struct CUmemAccessDesc_st {
	CUmemLocation location;
	int flags; // CUmemAccess_flags
} CUmemAccessDesc;

typedef struct CUmemPoolProps_st {
	int allocType;   // CU_MEM_ALLOCATION_TYPE_PINNED = 1
	int handleTypes; // CUmemAllocationHandleType
	CUmemLocation location;
	void *win32SecurityAttributes;
	size_t maxSize; // 0: no limit (CUDA 12.2; reserved, so zero, before)
	unsigned short usage;
	unsigned char reserved[54];
} CUmemPoolProps;

// IPC.
typedef struct CUipcMemHandle_st {
	char reserved[64];
} CUipcMemHandle;

typedef struct CUipcEventHandle_st {
	char reserved[64];
} CUipcEventHandle;

// gf_copy2d_as_3d restates a 2D copy as the 3D copy of one slice.
static inline void gf_copy2d_as_3d(const CUDA_MEMCPY2D *c, CUDA_MEMCPY3D *o) {
	*o = (CUDA_MEMCPY3D){
		.srcXInBytes = c->srcXInBytes, .srcY = c->srcY, .srcMemoryType = c->srcMemoryType,
		.srcHost = c->srcHost, .srcDevice = c->srcDevice, .srcArray = c->srcArray,
		.srcPitch = c->srcPitch, .srcHeight = c->Height,
		.dstXInBytes = c->dstXInBytes, .dstY = c->dstY, .dstMemoryType = c->dstMemoryType,
		.dstHost = c->dstHost, .dstDevice = c->dstDevice, .dstArray = c->dstArray,
		.dstPitch = c->dstPitch, .dstHeight = c->Height,
		.WidthInBytes = c->WidthInBytes, .Height = c->Height, .Depth = 1,
	};
}

#endif
