# gpunode: build, test and run a local network.
#
#   make demo   build gpunode and train a model on a whole local network on loopback
#   make test   what CI runs: vet, staticcheck, gofmt, and the race-enabled suite
#   make e2e    long runs: the full consensus simulator, soak and end-to-end tests
#   make bench  the benchmarks in ./test/bench, side by side with what they must beat
#   make fuzz   every fuzz target for FUZZTIME each (default 60s)
#   make deps   install the pinned tools (staticcheck)

GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
BIN         := bin/gpunode
VERSION     := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X github.com/gpunode/gpunode/internal/version.Version=$(VERSION)
# The unit suite must stay under 15 minutes with -race on a 2-core CI machine.
TEST_TIMEOUT ?= 14m
FUZZTIME    ?= 60s
BENCHTIME   ?= 1x

.PHONY: all build test vet staticcheck fmt-check unit demo e2e bench fuzz deps clean wasm-examples wasi-toolchain train-c-wasm

all: build

# bin/train.wasm is the training program `gpunode devnet --scenario train`
# (make demo) runs on the market; devnet finds it next to bin/gpunode.
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gpunode
	GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -o bin/train.wasm ./examples/train

# What `make test` needs. The suite itself needs only Go and gcc (cgo).
deps: $(STATICCHECK)

# clang for wasm32-wasi, for the C training kernel that BenchmarkWasmTrain
# builds (train-c-wasm); `make bench` installs it. Where Debian's packages
# cannot be had, the benchmark falls back to the committed train-c.wasm.
WASI_PKGS := clang lld wasi-libc libclang-rt-14-dev-wasm32
wasi-toolchain:
	@dpkg -s $(WASI_PKGS) >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $(WASI_PKGS); } || \
		echo "make: could not install $(WASI_PKGS); BenchmarkWasmTrain uses the committed train-c.wasm"

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

vet:
	$(GO) vet ./...

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# The second run builds the block store and the exchange without the
# AVX-512 hash (tag purego), so the path machines without AVX-512 take
# (each block hashed as it is read) is tested on one that has it.
unit:
	$(GO) test -race -shuffle=on -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -race -shuffle=on -timeout $(TEST_TIMEOUT) -tags purego ./storage/...

test: fmt-check vet staticcheck unit

demo: build
	./scripts/demo.sh

# GPUNODE_E2E=1 turns on the long variants: full-size transfers, the
# consensus simulator's 100,000 seeds, process kill/restart loops.
e2e: build
	GPUNODE_E2E=1 $(GO) test -timeout 120m ./...

# The output streams through scripts/benchtable, which ends it with one
# table of the figures next to their comparisons and targets and writes the
# rows to bench.json. pipefail: a failing benchmark fails make.
bench: SHELL := /bin/bash
bench: .SHELLFLAGS := -o pipefail -c
bench: build wasi-toolchain
	$(GO) build -o /dev/null ./scripts/benchtable
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./test/bench/ 2>&1 | $(GO) run ./scripts/benchtable -json bench.json

fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# The example workloads as wasip1 modules (the wasm executor runs these).
wasm-examples:
	GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -o bin/train.wasm ./examples/train
	GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -o bin/matmul.wasm ./examples/matmul

# The C training kernel as a wasm32-wasi module. BenchmarkWasmTrain builds it
# through this rule (TRAIN_C_WASM=its temp file) to compare it with the same C
# built natively; the committed copy is the fallback where clang is missing.
# No -ffast-math and no FP contraction: native and wasm must give equal bits.
# SIMD (f64x2) and bulk memory are wasm 2.0 features wazero supports; clang
# vectorises only the element-wise loops, which keeps every result bit.
# -disable-lsr keeps loads as constant offsets from one address (train.c's
# 64-byte groups), which loop strength reduction would turn into an address
# each, so wazero checks bounds once per group instead of once per load.
TRAIN_C_WASM ?= examples/train/ckernel/train-c.wasm
CKERNEL      := examples/train/ckernel
train-c-wasm:
	clang --target=wasm32-wasi --sysroot=/usr -O2 -msimd128 -mbulk-memory -ffp-contract=off -mllvm -disable-lsr -Wall -Wextra -Werror \
		-Wl,--strip-all -o $(TRAIN_C_WASM) $(CKERNEL)/wasi/main.c $(CKERNEL)/train.c -lm

clean:
	rm -rf bin
