// Command segprog is the market tests' segment program, built for wasip1:
// it reads the segment's input file and writes result.txt with its
// SHA-256, the segment index and the job, so each segment's output is
// distinct and every honest provider's is identical.
package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	in, err := os.ReadFile(filepath.Join(os.Getenv("GPUNODE_INPUT_DIR"), "input"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "segprog:", err)
		os.Exit(1)
	}
	out := fmt.Sprintf("%x segment=%s of %s job=%s\n", sha256.Sum256(in), os.Getenv("GPUNODE_SEGMENT"),
		os.Getenv("GPUNODE_SEGMENTS"), os.Getenv("GPUNODE_JOB"))
	if err := os.WriteFile(filepath.Join(os.Getenv("GPUNODE_OUTPUT_DIR"), "result.txt"), []byte(out), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "segprog:", err)
		os.Exit(1)
	}
}
