/*
 * gn_train: the training kernel of examples/train in C, compiled both
 * natively (through cgo, package ckernel) and to wasm32-wasi (wasi/main.c),
 * so BenchmarkWasmTrain compares the same source under both.
 *
 * It is the exact algorithm of model.Train in Go: mini-batch SGD on the
 * logistic loss, rows in order, every product rounded before it is added
 * (build with -ffp-contract=off and without -ffast-math), and the same
 * portable exp. Native, wasm and the Go code therefore give the same bits.
 */
#ifndef GN_TRAIN_H
#define GN_TRAIN_H

/*
 * w: d+1 weights (bias last), updated in place. x: n rows of d features.
 * y: n labels (0 or 1). grad: scratch of d+1 doubles. Returns 0, or -1 for
 * bad parameters (nothing changed).
 */
int gn_train(double *w, int d, const double *x, const double *y, long n,
             int epochs, double lr, int batch, double *grad);

#endif
