#include <math.h>
#include <string.h>

#include "train.h"

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

int gn_train(double *w, int d, const double *x, const double *y, long n,
             int epochs, double lr, int batch, double *grad) {
	if (d <= 0 || n < 0 || epochs < 0 || batch <= 0 || !(lr > 0)) {
		return -1;
	}
	for (int ep = 0; ep < epochs; ep++) {
		for (long start = 0; start < n; start += batch) {
			long end = start + batch < n ? start + batch : n;
			memset(grad, 0, sizeof(double) * (size_t)(d + 1));
			double gb = 0;
			for (long i = start; i < end; i++) {
				const double *xi = x + i * d;
				double z = w[d];
				for (int j = 0; j < d; j++) {
					z += w[j] * xi[j];
				}
				double e = gn_sigmoid(z) - y[i];
				for (int j = 0; j < d; j++) {
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
