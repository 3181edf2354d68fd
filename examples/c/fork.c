/*
 * fork: a process that forks after initialising CUDA. As with the real
 * driver, the child cannot use CUDA (its calls fail with
 * CUDA_ERROR_NOT_INITIALIZED, "initialization error") but is otherwise
 * unharmed: a child that does not touch CUDA exits normally, and the parent
 * keeps working.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "gpufabric_cuda.h"

static int wait_child(pid_t pid, const char *what) {
	int status;
	if (waitpid(pid, &status, 0) != pid)
		gf_die("waitpid");
	if (!WIFEXITED(status)) {
		fprintf(stderr, "FAIL: %s child died of signal %d\n", what, WTERMSIG(status));
		return 1;
	}
	if (WEXITSTATUS(status) != 0) {
		fprintf(stderr, "FAIL: %s child exited %d\n", what, WEXITSTATUS(status));
		return 1;
	}
	printf("%s child: exit 0\n", what);
	return 0;
}

int main(void) {
	gf_driver cu;
	gf_setup(&cu);
	CUdeviceptr p;
	GF_CHECK(cu.cuMemAlloc(&p, 1 << 20));
	fflush(stdout);

	/* A child that uses CUDA gets the driver's error, not a hang or a crash. */
	pid_t pid = fork();
	if (pid < 0)
		gf_die("fork");
	if (pid == 0) {
		CUdeviceptr q = 0;
		CUresult r1 = cu.cuMemAlloc(&q, 4096);
		CUresult r2 = cu.cuCtxSynchronize();
		int count = -1;
		CUresult r3 = cu.cuDeviceGetCount(&count);
		CUresult r4 = cu.cuInit(0);
		printf("child: cuMemAlloc = %d, cuCtxSynchronize = %d, cuDeviceGetCount = %d, cuInit = %d\n", (int)r1,
		       (int)r2, (int)r3, (int)r4);
		fflush(stdout);
		_exit(r1 == CUDA_ERROR_NOT_INITIALIZED && r2 == CUDA_ERROR_NOT_INITIALIZED &&
		              r3 == CUDA_ERROR_NOT_INITIALIZED && r4 == CUDA_ERROR_NOT_INITIALIZED
		          ? 0
		          : 1);
	}
	int failed = wait_child(pid, "CUDA-using");

	/* A child that leaves CUDA alone is unharmed and exits normally. */
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		gf_die("fork");
	if (pid == 0) {
		long sum = 0;
		for (int i = 0; i < 1000; i++)
			sum += i;
		printf("child: no CUDA, sum %ld\n", sum);
		exit(sum == 499500 ? 0 : 1);
	}
	failed |= wait_child(pid, "CUDA-free");

	/* The parent's session is untouched. */
	unsigned int pattern = 0x5a5a5a5a, back = 0;
	GF_CHECK(cu.cuMemsetD32(p, pattern, (1 << 20) / 4));
	GF_CHECK(cu.cuMemcpyDtoH(&back, p, sizeof back));
	if (back != pattern)
		gf_die("the parent's device memory changed");
	GF_CHECK(cu.cuMemFree(p));
	GF_CHECK(cu.cuCtxSynchronize());
	if (failed)
		return 1;
	printf("fork: ok\n");
	return 0;
}
