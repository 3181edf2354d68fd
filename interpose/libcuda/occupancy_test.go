//go:build linux

package main

import "testing"

// An sm_90-like multiprocessor.
var sm90 = smLimits{warp: 32, threads: 2048, blocks: 32, regs: 65536, smem: 228 << 10}

func TestBlocksPerSM(t *testing.T) {
	k := kernelUse{maxThreads: 1024, regs: 32, maxDynSmem: 227 << 10}
	for _, c := range []struct {
		name  string
		k     kernelUse
		block int
		smem  uint64
		want  int
	}{
		{"threads bound", k, 256, 0, 8},
		{"a partial warp takes a whole one", k, 100, 0, 16},
		{"64 registers halve it", kernelUse{maxThreads: 1024, regs: 64, maxDynSmem: 227 << 10}, 256, 0, 4},
		{"registers round up per warp", kernelUse{maxThreads: 1024, regs: 33, maxDynSmem: 227 << 10}, 256, 0, 6},
		{"shared memory bound", k, 256, 48 << 10, 4},
		{"static and dynamic add", kernelUse{maxThreads: 1024, regs: 32, staticSmem: 16 << 10, maxDynSmem: 227 << 10}, 256, 60 << 10, 3},
		{"block slots bound", k, 32, 0, 32},
		{"past the kernel's threads", k, 2048, 0, 0},
		{"past its dynamic shared memory", k, 256, 228 << 10, 0},
		{"no block", k, 0, 0, 0},
	} {
		if got := blocksPerSM(sm90, c.k, c.block, c.smem); got != c.want {
			t.Errorf("%s: %d blocks of %d threads, want %d", c.name, got, c.block, c.want)
		}
	}
}

func TestBestBlockSize(t *testing.T) {
	k := kernelUse{maxThreads: 1024, regs: 32, maxDynSmem: 48 << 10}
	none := func(int) uint64 { return 0 }
	// Every size from 64 up keeps 2048 threads resident: the largest wins.
	if block, blocks := bestBlockSize(sm90, k, 0, none); block != 1024 || blocks != 2 {
		t.Errorf("no shared memory: block %d, %d blocks", block, blocks)
	}
	// With 120 KiB per block past 128 threads, large blocks starve: one
	// fits, where sixteen of 128 threads do.
	big := kernelUse{maxThreads: 1024, regs: 32, maxDynSmem: 227 << 10}
	if block, blocks := bestBlockSize(sm90, big, 0, func(b int) uint64 {
		if b > 128 {
			return 120 << 10
		}
		return 0
	}); block != 128 || blocks != 16 {
		t.Errorf("with shared memory past 128 threads: block %d, %d blocks", block, blocks)
	}
	// The limit itself is tried first: 48 threads keep 1536 resident, 32
	// only 1024.
	if block, _ := bestBlockSize(sm90, k, 48, none); block != 48 {
		t.Errorf("limit 48: block %d, want 48", block)
	}
	if block, _ := bestBlockSize(sm90, k, 16, none); block != 16 {
		t.Errorf("limit 16, under a warp: block %d, want 16", block)
	}
}
