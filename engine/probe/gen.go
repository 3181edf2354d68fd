package probe

// The BPF objects are built from bpf/*.c by bpf2go (`make generate`, which
// needs clang, llvm-strip and Debian's libbpf-dev headers) and committed,
// so a build needs no clang. The generated Go files carry the linux tag.

//go:generate go tool bpf2go -tags linux -target amd64,arm64 -cflags "-O2 -g -Wall -Werror" sched bpf/sched.c -- -I./bpf
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -cflags "-O2 -g -Wall -Werror" syscalls bpf/syscalls.c -- -I./bpf
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -cflags "-O2 -g -Wall -Werror" tcp bpf/tcp.c -- -I./bpf
