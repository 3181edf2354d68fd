/*
 * rounds: vector additions in rounds, each with new inputs and checked on
 * the host, until a line arrives on stdin (or it closes). It prints
 * "ready" after the first round and "round N" after each, so that a test
 * can see it compute on while something else happens: the pool tests run
 * it through an outage of the pool's store.
 *
 *     rounds [kernels.ptx] [elements]
 */
#include <sys/select.h>
#include <unistd.h>

#include "gpufabric_cuda.h"

/* told says whether a line (or the end) is waiting on stdin, without
 * blocking. */
static int told(void) {
	fd_set in;
	FD_ZERO(&in);
	FD_SET(0, &in);
	struct timeval none = {0, 0};
	return select(1, &in, NULL, NULL, &none) > 0;
}

int main(int argc, char **argv) {
	char *ptx = gf_read_file(gf_kernels_path(argc > 1 ? argv[1] : NULL), NULL);
	int n = argc > 2 ? atoi(argv[2]) : 1 << 16;
	if (n <= 0 || n > 1 << 22)
		gf_die("elements: want 1 to 4194304 (sums stay exact in a float)");
	size_t bytes = (size_t)n * sizeof(float);

	gf_driver cu;
	gf_setup(&cu);
	CUmodule mod;
	CUfunction fn;
	GF_CHECK(cu.cuModuleLoadData(&mod, ptx));
	GF_CHECK(cu.cuModuleGetFunction(&fn, mod, "vector_add"));
	float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
	if (!a || !b || !c)
		gf_die("host allocation");
	CUdeviceptr da, db, dc;
	GF_CHECK(cu.cuMemAlloc(&da, bytes));
	GF_CHECK(cu.cuMemAlloc(&db, bytes));
	GF_CHECK(cu.cuMemAlloc(&dc, bytes));

	int round = 0;
	do {
		round++;
		for (int i = 0; i < n; i++) {
			a[i] = (float)(i + round);
			b[i] = (float)((i * 7 + round) % n);
			c[i] = -1.0f;
		}
		GF_CHECK(cu.cuMemcpyHtoD(da, a, bytes));
		GF_CHECK(cu.cuMemcpyHtoD(db, b, bytes));
		void *args[] = {&da, &db, &dc, &n};
		unsigned int block = 256, grid = (unsigned int)((n + block - 1) / block);
		GF_CHECK(cu.cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, 0, NULL, args, NULL));
		GF_CHECK(cu.cuMemcpyDtoH(c, dc, bytes));
		for (int i = 0; i < n; i++) {
			if (c[i] != a[i] + b[i]) {
				fprintf(stderr, "FAIL: round %d: c[%d] = %g, want %g\n", round, i, c[i], a[i] + b[i]);
				return 1;
			}
		}
		if (round == 1)
			printf("ready\n");
		printf("round %d\n", round);
		fflush(stdout);
		/* A pause between rounds leaves the machine to the others. */
		usleep(20000);
	} while (!told());

	GF_CHECK(cu.cuMemFree(da));
	GF_CHECK(cu.cuMemFree(db));
	GF_CHECK(cu.cuMemFree(dc));
	GF_CHECK(cu.cuModuleUnload(mod));
	printf("rounds: %d rounds of %d elements correct\n", round, n);
	free(a);
	free(b);
	free(c);
	free(ptx);
	return 0;
}
