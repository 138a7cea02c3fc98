//go:build linux

package process

import (
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	line := []byte("1234 (a (weird) name) S 1 777 777 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5000 123456789 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
	pg, rss, ok := parseStat(line)
	if !ok || pg != 777 || rss != 321 {
		t.Fatalf("parseStat = %d, %d, %v; want 777, 321, true", pg, rss, ok)
	}
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	if _, rss, ok := parseStat(self); !ok || rss == 0 {
		t.Fatalf("parseStat(/proc/self/stat) = %d, %v", rss, ok)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1000 10 0"))
	f.Add([]byte("2 (x)) R"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		pg, rss, ok := parseStat(b)
		if !ok && (pg != 0 || rss != 0) {
			t.Fatalf("failed parse returned values %d %d", pg, rss)
		}
	})
}
