/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* log2.h: floor(log2(v)) without loops (0 for 0 and 1). */
#ifndef GPUFABRIC_LOG2_H
#define GPUFABRIC_LOG2_H

#define NBUCKETS 64

static __always_inline __u32 log2_u32(__u32 v)
{
	__u32 shift, r;

	r = (v > 0xFFFF) << 4;
	v >>= r;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 hi = v >> 32;

	if (hi)
		return log2_u32(hi) + 32;
	return log2_u32((__u32)v);
}

#endif
