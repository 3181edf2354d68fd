// dlsym_all: opens a library as an application would and looks up every
// name read from stdin, one a line; prints each name that does not resolve.
// With a second library, also checks that both names open the same file (one
// handle) and resolve a name to the same address.
//
// usage: dlsym_all LIBRARY [SAME_LIBRARY] < names
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: dlsym_all LIBRARY [SAME_LIBRARY] < names\n");
		return 2;
	}
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
		return 2;
	}
	char line[512];
	int n = 0, missing = 0;
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\r\n#")] = 0;
		if (!line[0])
			continue;
		n++;
		dlerror();
		if (!dlsym(h, line)) {
			printf("missing %s\n", line);
			missing++;
		}
	}
	printf("resolved %d of %d names\n", n - missing, n);
	if (argc > 2) {
		void *h2 = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
		if (!h2) {
			fprintf(stderr, "dlopen %s: %s\n", argv[2], dlerror());
			return 2;
		}
		printf("same handle: %s\n", h2 == h ? "yes" : "no");
		printf("same nvmlInit_v2: %s\n", dlsym(h2, "nvmlInit_v2") == dlsym(h, "nvmlInit_v2") ? "yes" : "no");
	}
	return missing ? 1 : 0;
}
