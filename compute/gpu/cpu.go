package gpu

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// CPU is the host's processor and memory inventory.
type CPU struct {
	Model        string `json:"model"`
	LogicalCores int    `json:"logicalCores"`
	MemoryBytes  uint64 `json:"memoryBytes"`
}

// ReadCPU reads the CPU model and memory from /proc where it exists; the
// core count is what the Go runtime may use.
func ReadCPU() CPU {
	c := CPU{LogicalCores: runtime.NumCPU(), Model: runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := ParseCPUModel(b); m != "" {
			c.Model = m
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		c.MemoryBytes, _ = ParseMemTotal(b)
	}
	return c
}

// ParseCPUModel returns the first "model name" in /proc/cpuinfo content.
func ParseCPUModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ParseMemTotal returns MemTotal from /proc/meminfo content, in bytes.
func ParseMemTotal(meminfo []byte) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != "MemTotal" {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || n > 1<<54 {
			return 0, false
		}
		if len(f) > 1 && strings.EqualFold(f[1], "kB") {
			n *= 1024
		}
		return n, true
	}
	return 0, false
}
