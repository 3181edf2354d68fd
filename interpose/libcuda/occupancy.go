//go:build linux

package main

// smLimits are one multiprocessor's limits, from a device's attributes.
type smLimits struct {
	warp    int // threads per warp
	threads int // resident threads
	blocks  int // resident blocks
	regs    int // 32-bit registers
	smem    int // shared memory bytes
}

// kernelUse is what a kernel's blocks take, from its attributes.
type kernelUse struct {
	maxThreads int // per block
	regs       int // per thread
	staticSmem int // per block
	maxDynSmem int // per block
}

// regAlloc is the unit registers are allocated in, per warp.
const regAlloc = 256

// blocksPerSM is how many blocks of blockSize threads, each with dynSmem
// bytes of dynamic shared memory, one multiprocessor holds at once: the
// least of what its threads, registers, shared memory and block slots
// allow; 0 when one block exceeds the kernel's limits.
func blocksPerSM(l smLimits, k kernelUse, blockSize int, dynSmem uint64) int {
	if blockSize <= 0 || blockSize > k.maxThreads || dynSmem > uint64(k.maxDynSmem) {
		return 0
	}
	warps := (blockSize + l.warp - 1) / l.warp
	blocks := min(l.threads/(warps*l.warp), l.blocks)
	if k.regs > 0 {
		perWarp := (k.regs*l.warp + regAlloc - 1) / regAlloc * regAlloc
		blocks = min(blocks, l.regs/(perWarp*warps))
	}
	if smem := uint64(k.staticSmem) + dynSmem; smem > 0 {
		blocks = min(blocks, int(uint64(l.smem)/smem))
	}
	return max(blocks, 0)
}

// bestBlockSize is the block size up to limit (the kernel's own limit
// when 0) that keeps the most threads resident, the larger on a tie, and
// the blocks per multiprocessor it gives; smemOf gives each size's dynamic
// shared memory. As CUDA's own calculator, it tries the limit itself,
// then every whole number of warps below it.
func bestBlockSize(l smLimits, k kernelUse, limit int, smemOf func(block int) uint64) (block, blocks int) {
	top := k.maxThreads
	if limit > 0 {
		top = min(top, limit)
	}
	most := 0
	for bs := top; bs > 0; bs = (bs - 1) / l.warp * l.warp {
		if n := blocksPerSM(l, k, bs, smemOf(bs)); n*bs > most {
			block, blocks, most = bs, n, n*bs
		}
	}
	return block, blocks
}
