/*
 * train-c: one training segment of examples/train with the C kernel, built
 * to wasm32-wasi by `make train-c-wasm` (see ../README in the Makefile rule).
 *
 *   train-c WEIGHTS SHARD OUT EPOCHS [LR BATCH]
 *
 * WEIGHTS and SHARD are files in the formats of model.EncodeWeights and
 * model.EncodeShard (GNS2, used in place) or model.EncodeShardV1 (GNS1);
 * OUT receives the new weights in the weights format.
 * Under the wasm executor inputs are under /in and outputs under /out.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../train.h"

#define MAX_DIM (1u << 16)
#define MAX_ROWS (1u << 24)

_Noreturn static void die(const char *what, const char *detail) {
	fprintf(stderr, "train-c: %s: %s\n", what, detail);
	exit(1);
}

/* slurp reads a whole file with one allocation of its size: growing the
 * buffer would grow wasm linear memory step by step, copying it each time. */
static unsigned char *slurp(const char *path, size_t *len) {
	FILE *f = fopen(path, "rb");
	struct stat st;
	if (!f || fstat(fileno(f), &st) != 0) {
		die("open", path);
	}
	size_t n = (size_t)st.st_size;
	unsigned char *b = malloc(n + 1);
	if (!b) {
		die("read", "out of memory");
	}
	if (fread(b, 1, n, f) != n || fgetc(f) != EOF) {
		die("read", path);
	}
	fclose(f);
	*len = n;
	return b;
}

static uint32_t le32(const unsigned char *p) {
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* lef64 decodes a little-endian float64; wasm32 and the usual native hosts
 * are little-endian, where it compiles to one unaligned load. */
static double lef64(const unsigned char *p) {
	uint64_t u;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(&u, p, sizeof u);
#else
	u = 0;
	for (int i = 7; i >= 0; i--) {
		u = u << 8 | p[i];
	}
#endif
	double v;
	memcpy(&v, &u, sizeof v);
	return v;
}

static void putf64(unsigned char *p, double v) {
	uint64_t u;
	memcpy(&u, &v, sizeof u);
	for (int i = 0; i < 8; i++) {
		p[i] = (unsigned char)(u >> (8 * i));
	}
}

/* finite: the exponent bits of v are not all ones (NaN, infinities). */
static int finite_bits(uint64_t u) {
	return (u & 0x7ff0000000000000ull) != 0x7ff0000000000000ull;
}

/*
 * shard2 checks a GNS2 shard (model.EncodeShard) and points x and y at its
 * arrays where they lie in sb: no copy and no decoding, only a check that
 * features are finite and labels 0 or 1. It returns the row count.
 */
static uint32_t shard2(const char *path, unsigned char *sb, size_t sl, uint32_t d, double **x, double **y) {
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shard2 reads little-endian doubles in place"
#endif
	if (sl < 16 || le32(sb + 12) != 0) {
		die(path, "bad GNS2 header");
	}
	uint32_t sd = le32(sb + 4), rows = le32(sb + 8);
	if (sd != d || rows > MAX_ROWS || sl != 16 + 8 * (size_t)rows * ((size_t)d + 1)) {
		die(path, "shard shape does not match the weights");
	}
	if ((uintptr_t)sb % 8 != 0) {
		die(path, "buffer not aligned");
	}
	const uint64_t *u = (const uint64_t *)(sb + 16);
	size_t nx = (size_t)rows * d;
	/* One branch-free pass: the compiler vectorises it. */
	uint64_t bad = 0;
	for (size_t i = 0; i < nx; i++) {
		bad |= !finite_bits(u[i]);
	}
	if (bad) {
		die(path, "feature not finite");
	}
	for (size_t i = nx; i < nx + rows; i++) {
		if (u[i] != 0 && u[i] != 0x3ff0000000000000ull) {
			die(path, "label not 0 or 1");
		}
	}
	*x = (double *)(sb + 16);
	*y = *x + nx;
	return rows;
}

/* shard1 decodes a GNS1 shard (model.EncodeShardV1) into new arrays. */
static uint32_t shard1(const char *path, unsigned char *sb, size_t sl, uint32_t d, double **xp, double **yp) {
	if (sl < 12) {
		die(path, "not a shard file");
	}
	uint32_t sd = le32(sb + 4), rows = le32(sb + 8);
	if (sd != d || rows > MAX_ROWS || sl != 12 + (size_t)rows * (8 * (size_t)d + 1)) {
		die(path, "shard shape does not match the weights");
	}
	double *x = malloc(sizeof(double) * (size_t)rows * d + 1);
	double *y = malloc(sizeof(double) * (size_t)rows + 1);
	if (!x || !y) {
		die("shard", "out of memory");
	}
	const unsigned char *p = sb + 12;
	for (uint32_t i = 0; i < rows; i++) {
		double *xi = x + (size_t)i * d;
		for (uint32_t j = 0; j < d; j++, p += 8) {
			xi[j] = lef64(p);
		}
		for (uint32_t j = 0; j < d; j++) {
			if (!isfinite(xi[j])) {
				die(path, "feature not finite");
			}
		}
		if (*p > 1) {
			die(path, "label not 0 or 1");
		}
		y[i] = *p++;
	}
	*xp = x;
	*yp = y;
	return rows;
}

int main(int argc, char **argv) {
	if (argc != 5 && argc != 7) {
		die("usage", "train-c WEIGHTS SHARD OUT EPOCHS [LR BATCH]");
	}
	int epochs = atoi(argv[4]);
	double lr = argc == 7 ? strtod(argv[5], NULL) : 0.5;
	int batch = argc == 7 ? atoi(argv[6]) : 32;

	size_t wl, sl;
	unsigned char *wb = slurp(argv[1], &wl);
	if (wl < 8 || memcmp(wb, "GNW1", 4) != 0) {
		die(argv[1], "not a weights file");
	}
	uint32_t d = le32(wb + 4);
	if (d == 0 || d > MAX_DIM || wl != 8 + 8 * ((size_t)d + 1)) {
		die(argv[1], "bad weights size");
	}
	double *w = malloc(sizeof(double) * (d + 1));
	for (uint32_t i = 0; i <= d; i++) {
		w[i] = lef64(wb + 8 + 8 * i);
		if (!isfinite(w[i])) {
			die(argv[1], "weight not finite");
		}
	}

	unsigned char *sb = slurp(argv[2], &sl);
	double *x, *y;
	uint32_t rows;
	if (sl >= 4 && memcmp(sb, "GNS2", 4) == 0) {
		rows = shard2(argv[2], sb, sl, d, &x, &y);
	} else if (sl >= 4 && memcmp(sb, "GNS1", 4) == 0) {
		rows = shard1(argv[2], sb, sl, d, &x, &y);
	} else {
		die(argv[2], "not a shard file");
	}
	double *grad = malloc(sizeof(double) * (d + 1));
	if (!grad) {
		die("shard", "out of memory");
	}

	if (gn_train(w, (int)d, x, y, rows, epochs, lr, batch, grad) != 0) {
		die("train", "bad epochs, learning rate or batch size");
	}

	for (uint32_t i = 0; i <= d; i++) {
		putf64(wb + 8 + 8 * i, w[i]);
	}
	FILE *f = fopen(argv[3], "wb");
	if (!f || fwrite(wb, 1, wl, f) != wl || fclose(f) != 0) {
		die("write", argv[3]);
	}
	return 0;
}
