// Command matmul computes the hardware challenge's seeded matrix product,
// natively or as a wasip1 module: it writes C = A·B (little-endian int32s)
// for the matrices derived from -seed.
//
//	matmul -seed S -n N -out c.bin
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gpunode/gpunode/examples/matmul/mat"
)

func main() {
	seed := flag.Uint64("seed", 1, "seed of A and B")
	n := flag.Int("n", 256, "dimension")
	out := flag.String("out", "c.bin", "output file (relative: under $GPUNODE_OUTPUT_DIR)")
	flag.Parse()
	a, b, err := mat.Generate(*seed, *n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "matmul:", err)
		os.Exit(1)
	}
	p := *out
	if d := os.Getenv("GPUNODE_OUTPUT_DIR"); d != "" && !filepath.IsAbs(p) {
		p = filepath.Join(d, p)
	}
	if err := os.WriteFile(p, mat.Encode(mat.Multiply(a, b, *n)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "matmul:", err)
		os.Exit(1)
	}
}
