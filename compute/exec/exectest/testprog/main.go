// Command testprog is the program the executor conformance suite runs. It is
// built natively (process executor) and with GOOS=wasip1 GOARCH=wasm (wasm
// executor) from this one source, and its first argument picks a behaviour,
// well-behaved or hostile.
package main

import (
	crand "crypto/rand"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail(2, "usage: testprog behaviour [args]")
	}
	in, out := os.Getenv("GPUNODE_INPUT_DIR"), os.Getenv("GPUNODE_OUTPUT_DIR")
	args := os.Args[2:]
	switch os.Args[1] {
	case "copy": // copy input args[0] to output args[1]
		b, err := os.ReadFile(filepath.Join(in, args[0]))
		check(err)
		check(os.MkdirAll(filepath.Dir(filepath.Join(out, args[1])), 0o755))
		check(os.WriteFile(filepath.Join(out, args[1]), b, 0o644))
		fmt.Println("copied", len(b))
	case "echo": // print args and the GPUNODE_/TEST_ environment
		fmt.Println("args:", strings.Join(args, "|"))
		var env []string
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, "TEST_") || strings.HasPrefix(kv, "CUDA_") || strings.HasPrefix(kv, "NVIDIA_") {
				env = append(env, kv)
			}
		}
		sort.Strings(env)
		fmt.Println("env:", strings.Join(env, "|"))
	case "writeinput": // try to change input args[0] and to add a file next to it
		f, err := os.OpenFile(filepath.Join(in, args[0]), os.O_WRONLY|os.O_TRUNC, 0)
		if err == nil {
			_, _ = f.WriteString("tampered")
			f.Close()
			fmt.Println("input modified")
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "write input:", err)
		if err := os.WriteFile(filepath.Join(in, "new"), []byte("x"), 0o644); err == nil {
			fmt.Println("input dir modified")
			os.Exit(0)
		}
		os.Exit(3)
	case "exit": // exit with status args[0], saying so on stderr
		n, _ := strconv.Atoi(args[0])
		fmt.Fprintln(os.Stderr, "exiting with", n)
		os.Exit(n)
	case "spin": // an infinite loop
		x := 0
		for {
			x++
		}
	case "membomb": // keep allocating and touching 1 MiB blocks
		for i := 0; ; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = byte(i + j) // touch every page so it is resident
			}
			sink = append(sink, b)
		}
	case "bigfile": // write an output file forever
		f, err := os.Create(filepath.Join(out, "big"))
		check(err)
		buf := make([]byte, 1<<20)
		for {
			if _, err := f.Write(buf); err != nil {
				fail(7, "write: %v", err)
			}
		}
	case "bigstdout": // write to stdout forever
		buf := []byte(strings.Repeat("y", 1<<16) + "\n")
		for {
			if _, err := os.Stdout.Write(buf); err != nil {
				fail(7, "write: %v", err)
			}
		}
	case "hostfile": // try to read host files outside the mounts
		for _, p := range []string{"/etc/passwd", "/etc/hostname", filepath.Join(in, "../../../../etc/passwd")} {
			if b, err := os.ReadFile(p); err == nil {
				fmt.Printf("read host file %s: %d bytes\n", p, len(b))
				os.Exit(0)
			} else {
				fmt.Fprintln(os.Stderr, "open host file:", err)
			}
		}
		os.Exit(4)
	case "socket": // try to reach args[0] over TCP
		if c, err := net.Dial("tcp", args[0]); err == nil {
			c.Write([]byte("escaped"))
			c.Close()
			fmt.Println("connected")
			os.Exit(0)
		} else {
			fmt.Fprintln(os.Stderr, "dial:", err)
		}
		os.Exit(5)
	case "symlink": // plant a link to a host file in the outputs and read it back
		link := filepath.Join(out, "link")
		if err := os.Symlink("/etc/passwd", link); err != nil {
			fmt.Fprintln(os.Stderr, "symlink:", err)
			os.Exit(6)
		}
		if b, err := os.ReadFile(link); err == nil {
			fmt.Printf("read host file through link: %d bytes\n", len(b))
			os.Exit(0)
		} else {
			fmt.Fprintln(os.Stderr, "read link:", err)
		}
		os.Exit(6)
	case "nondet": // everything a program might use to be non-deterministic
		var sb strings.Builder
		start := time.Now()
		fmt.Fprintln(&sb, "now", start.UnixNano())
		fmt.Fprintln(&sb, "rand", rand.Int64(), rand.Float64())
		var b [16]byte
		_, _ = io.ReadFull(crand.Reader, b[:])
		fmt.Fprintf(&sb, "crypto %x\n", b)
		m := map[int]int{}
		for i := range 64 {
			m[i] = i
		}
		for k := range m {
			fmt.Fprint(&sb, k, " ")
		}
		fmt.Fprintln(&sb)
		time.Sleep(10 * time.Millisecond)
		fmt.Fprintln(&sb, "slept", time.Since(start))
		check(os.WriteFile(filepath.Join(out, "nondet.txt"), []byte(sb.String()), 0o644))
		fmt.Print(sb.String())
	case "tree": // start a child that starts a grandchild, print their pids, wait
		child := osexec.Command(os.Args[0], "tree-child")
		child.Stdout = os.Stdout
		child.Stderr = os.Stderr
		check(child.Start())
		fmt.Println("child", child.Process.Pid)
		check(child.Wait())
	case "tree-child":
		gc := osexec.Command(os.Args[0], "sleep")
		check(gc.Start())
		fmt.Println("grandchild", gc.Process.Pid)
		check(gc.Wait())
	case "ids": // print the user, group and supplementary groups
		groups, _ := os.Getgroups()
		fmt.Println("uid", os.Getuid(), "gid", os.Getgid(), "groups", groups)
	case "sleep": // block for a long time without using CPU
		time.Sleep(time.Hour)
	default:
		fail(2, "unknown behaviour %q", os.Args[1])
	}
}

// sink keeps the memory bomb's blocks reachable.
var sink [][]byte

func check(err error) {
	if err != nil {
		fail(1, "%v", err)
	}
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(code)
}
