# gpufabric — build, test, demo. See README.md.
SHELL := /bin/bash
GO ?= go
BUILD := build
BIN := $(BUILD)/bin
LIB := $(BUILD)/lib
EXAMPLES_OUT := $(BUILD)/examples
CC ?= cc

.PHONY: all build binary interposer c-examples test test-short demo demo-pool bench check gpu-check rdma-check clean

all: build

build: binary interposer c-examples

binary:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/gpufabric ./cmd/gpufabric
	$(GO) build -o $(BIN)/saxpy-demo ./examples/saxpy
	@mkdir -p $(BUILD)/tests
	$(GO) test -c -o $(BUILD)/tests/cuda.test ./engine/backend/cuda

# The interposer: one c-shared library exporting the CUDA driver API and
# NVML, installed under the names applications load. Its SONAME is
# libcuda.so.1, so a program linked against the build's libcuda.so records
# the name the driver is installed under, as one linked against NVIDIA's does.
interposer:
	@if [ -d interpose/libcuda ]; then \
		mkdir -p $(LIB) && \
		$(GO) build -buildmode=c-shared -ldflags '-extldflags=-Wl,-soname,libcuda.so.1' -o $(LIB)/libgpufabric.so ./interpose/libcuda && \
		ln -sf libgpufabric.so $(LIB)/libcuda.so.1 && ln -sf libcuda.so.1 $(LIB)/libcuda.so && \
		ln -sf libgpufabric.so $(LIB)/libnvidia-ml.so.1 && ln -sf libnvidia-ml.so.1 $(LIB)/libnvidia-ml.so; \
	fi

# The C examples, compiled with the system compiler against our own header.
c-examples:
	@mkdir -p $(EXAMPLES_OUT)
	@for src in examples/c/*.c; do \
		[ -e "$$src" ] || continue; \
		out=$(EXAMPLES_OUT)/$$(basename $$src .c); \
		echo "$(CC) $$src -o $$out"; \
		$(CC) -O2 -Wall -Wextra -Iexamples/c/include $$src -o $$out -ldl -lpthread || exit 1; \
	done

# The whole suite. Builds first: end-to-end tests run the binaries.
test: build
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./... > /dev/null
	$(BIN)/gpufabric bench --duration 2s > $(BUILD)/bench-smoke.txt
	@echo "gpufabric bench --duration 2s: ran (figures in $(BUILD)/bench-smoke.txt, not judged here)"

test-short:
	$(GO) test -short -count=1 ./...

# The demo: a server on the host backend on loopback, a saxpy client under a
# 0.25 share, the C examples under `gpufabric run` when they are built.
demo: build
	./scripts/demo.sh

# The pool: an embedded store, three servers, request, list, runs from the
# pool, a killed client whose capacity returns, and a quota refusing.
demo-pool: build
	./scripts/demo-pool.sh

bench: binary
	./scripts/bench.sh

check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# The real-GPU check: run on a machine with an NVIDIA GPU, from binaries
# built here (the GPU machine has no Go): make build && make gpu-check.
gpu-check:
	./scripts/gpu-check.sh

# The RDMA check: two hosts with RDMA NICs, perftest's ib_send_lat and
# ib_write_bw as floors beside gpufabric bench --transport rdma:
# make build && RDMA_CHECK_SERVER=otherhost make rdma-check.
rdma-check:
	./scripts/rdma-check.sh

clean:
	rm -rf $(BUILD)

# The eBPF probes' objects (engine/probe), rebuilt from engine/probe/bpf/*.c
# with bpf2go. Needs clang, llvm-strip and libbpf's headers (Debian: clang
# llvm libbpf-dev); the generated .o and .go files are committed, so a build
# needs none of them.
.PHONY: generate
generate:
	$(GO) generate ./engine/probe/
