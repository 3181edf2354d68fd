// gf_stub.h: what the generated stubs_gen.c needs, and nothing more (that
// file must not see the driver API's prototypes; see its header).
#ifndef GF_STUB_H
#define GF_STUB_H

int gf_stub(int index);

#define GF_STUB(name, index) \
	__attribute__((visibility("default"))) int name(void) { return gf_stub(index); }

#endif
