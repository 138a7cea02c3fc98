// Package ckernel is the training kernel of examples/train written in C
// (train.c): the same algorithm as model.Train, bit for bit, so that
// BenchmarkWasmTrain can run one C source natively (here, through cgo) and
// as wasm32-wasi (wasi/main.c, built by `make train-c-wasm`), and compare
// like with like. Go's wasip1 code generation is several times slower than
// its native code on this loop; clang's wasm32 output is close to native.
//
// train.c must be compiled without floating-point contraction (no fused
// multiply-add; its pragmas see to it, since cgo refuses -ffp-contract) and
// without -ffast-math, natively and to wasm, or the weights would differ in
// their last bits.
//
// Module is the committed wasm32-wasi build of wasi/main.c and train.c
// (`make train-c-wasm` rebuilds it); BenchmarkWasmTrain builds its own from
// source through the same rule and uses Module only where clang is missing.
package ckernel

import _ "embed"

// Module is train-c.wasm: `train-c WEIGHTS SHARD OUT EPOCHS [LR BATCH]`.
//
//go:embed train-c.wasm
var Module []byte
