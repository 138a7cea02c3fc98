//go:build linux

package process

import (
	"bytes"
	"os"
	"strconv"
)

var pageSize = uint64(os.Getpagesize())

// groupRSS sums the resident memory of every process in group pgid, read
// from /proc, so a program cannot escape the memory limit by forking.
func groupRSS(pgid int) uint64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total uint64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		pg, rss, ok := parseStat(b)
		if ok && pg == pgid {
			total += rss * pageSize
		}
	}
	return total
}

// parseStat extracts the process group (field 5) and resident pages (field
// 24) from /proc/<pid>/stat. The command name (field 2) may contain spaces
// and parentheses, so fields are counted after its last ')'.
func parseStat(b []byte) (pgid int, rssPages uint64, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 22 {
		return 0, 0, false
	}
	pg, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return 0, 0, false
	}
	rss, err := strconv.ParseInt(string(f[21]), 10, 64)
	if err != nil || rss < 0 {
		return 0, 0, false
	}
	return pg, uint64(rss), true
}
