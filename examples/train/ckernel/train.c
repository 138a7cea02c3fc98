#include <math.h>
#include <string.h>

#include "train.h"

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#endif

/*
 * HIGHEST_LOADED keeps the compiler from moving the loads before it (of
 * the highest 8 or 16 bytes of a 64-byte group) after those behind it:
 * see dot8. Code is unchanged but for the order of loads.
 */
#if defined(__wasm__)
#define HIGHEST_LOADED() __asm__ volatile("" ::: "memory")
#else
#define HIGHEST_LOADED() ((void)0)
#endif

/*
 * No fused multiply-add, whatever the compiler's default: every product is
 * rounded before it is added, as in the Go code and in wasm (which has no
 * FMA). The wasm build also passes -ffp-contract=off; cgo does not allow
 * that flag, hence the pragmas.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* Port of Go's portable math.Exp (FreeBSD e_exp.c), as in model/mathdet.go. */
static const double ln2Hi = 6.93147180369123816490e-01;
static const double ln2Lo = 1.90821492927058770002e-10;
static const double log2e = 1.44269504088896338700e+00;
static const double p1 = 1.66666666666666657415e-01;
static const double p2 = -2.77777777770155933842e-03;
static const double p3 = 6.61375632143793436117e-05;
static const double p4 = -1.65339022054652515390e-06;
static const double p5 = 4.13813679705723846039e-08;
static const double expOvf = 7.09782712893383973096e+02;
static const double expUnf = -7.45133219101941108420e+02;

static double gn_exp(double x) {
	if (x != x) {
		return x;
	}
	if (x > expOvf) {
		return INFINITY;
	}
	if (x < expUnf) {
		return 0;
	}
	if (-3.725290298461914e-09 < x && x < 3.725290298461914e-09) {
		return 1 + x;
	}
	int k;
	if (x < 0) {
		k = (int)(log2e * x - 0.5);
	} else {
		k = (int)(log2e * x + 0.5);
	}
	double hi = x - (double)k * ln2Hi;
	double lo = (double)k * ln2Lo;
	double r = hi - lo;
	double t = r * r;
	double c = r - t * (p1 + t * (p2 + t * (p3 + t * (p4 + t * p5))));
	double y = 1 - ((lo - (r * c) / (2 - c)) - hi);
	return ldexp(y, k);
}

static double gn_sigmoid(double z) {
	if (z > 40) {
		return 1;
	}
	if (z < -40) {
		return 0;
	}
	return 1 / (1 + gn_exp(-z));
}

/*
 * The row loops take 8 doubles (64 bytes) at a time from one pointer, the
 * highest first: a wasm engine that remembers which bounds it has checked
 * for a base address (wazero does, within a basic block) then checks once
 * per 64 bytes instead of once per load. The sums still run in index order,
 * so every result bit is the plain loop's.
 */
static double dot8(const double *w, const double *x, double z) {
	double x7 = x[7], w7 = w[7];
	HIGHEST_LOADED();
	double x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3], x4 = x[4], x5 = x[5], x6 = x[6];
	double w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6];
	z += w0 * x0;
	z += w1 * x1;
	z += w2 * x2;
	z += w3 * x3;
	z += w4 * x4;
	z += w5 * x5;
	z += w6 * x6;
	z += w7 * x7;
	return z;
}

#if defined(__wasm_simd128__)
/* The same per lane (IEEE multiply, then add) with the loads in the order
 * wanted: clang's vectoriser would load x from its low end. */
static void axpy8(double *g, double e, const double *x) {
	v128_t x3 = wasm_v128_load(x + 6), g3 = wasm_v128_load(g + 6);
	HIGHEST_LOADED();
	v128_t x0 = wasm_v128_load(x), x1 = wasm_v128_load(x + 2), x2 = wasm_v128_load(x + 4);
	v128_t g0 = wasm_v128_load(g), g1 = wasm_v128_load(g + 2), g2 = wasm_v128_load(g + 4);
	v128_t ev = wasm_f64x2_splat(e);
	wasm_v128_store(g, wasm_f64x2_add(g0, wasm_f64x2_mul(ev, x0)));
	wasm_v128_store(g + 2, wasm_f64x2_add(g1, wasm_f64x2_mul(ev, x1)));
	wasm_v128_store(g + 4, wasm_f64x2_add(g2, wasm_f64x2_mul(ev, x2)));
	wasm_v128_store(g + 6, wasm_f64x2_add(g3, wasm_f64x2_mul(ev, x3)));
}
#else
static void axpy8(double *g, double e, const double *x) {
	double x7 = x[7], g7 = g[7];
	double x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3], x4 = x[4], x5 = x[5], x6 = x[6];
	double g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3], g4 = g[4], g5 = g[5], g6 = g[6];
	g[0] = g0 + e * x0;
	g[1] = g1 + e * x1;
	g[2] = g2 + e * x2;
	g[3] = g3 + e * x3;
	g[4] = g4 + e * x4;
	g[5] = g5 + e * x5;
	g[6] = g6 + e * x6;
	g[7] = g7 + e * x7;
}
#endif

int gn_train(double *w, int d, const double *x, const double *y, long n,
             int epochs, double lr, int batch, double *grad) {
	if (d <= 0 || n < 0 || epochs < 0 || batch <= 0 || !(lr > 0)) {
		return -1;
	}
	int d8 = d - d % 8;
	for (int ep = 0; ep < epochs; ep++) {
		for (long start = 0; start < n; start += batch) {
			long end = start + batch < n ? start + batch : n;
			memset(grad, 0, sizeof(double) * (size_t)(d + 1));
			double gb = 0;
			for (long i = start; i < end; i++) {
				const double *xi = x + i * d;
				double z = w[d];
				int j = 0;
				for (; j < d8; j += 8) {
					z = dot8(w + j, xi + j, z);
				}
				for (; j < d; j++) {
					z += w[j] * xi[j];
				}
				double e = gn_sigmoid(z) - y[i];
				for (j = 0; j < d8; j += 8) {
					axpy8(grad + j, e, xi + j);
				}
				for (; j < d; j++) {
					grad[j] += e * xi[j];
				}
				gb += e;
			}
			double step = lr / (double)(end - start);
			for (int j = 0; j < d; j++) {
				w[j] -= step * grad[j];
			}
			w[d] -= step * gb;
		}
	}
	return 0;
}
