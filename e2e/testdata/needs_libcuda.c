// needs_libcuda: linked with -lcuda against the build's library, so that the
// linker records the library's SONAME as a needed library.
int cuInit(unsigned int flags);

int main(void) { return cuInit(0) == 0 ? 0 : 1; }
