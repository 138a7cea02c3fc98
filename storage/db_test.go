package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openTestDB opens a database of the given kind ("mem" or "disk") for a test
// and closes it at the end.
func openTestDB(t testing.TB, kind string, opts ...Option) *DB {
	t.Helper()
	opts = append([]Option{WithLogger(quietLogger())}, opts...)
	dir := ""
	switch kind {
	case "mem":
		opts = append(opts, WithInMemory())
	case "disk":
		dir = t.TempDir()
		opts = append(opts, WithLowMemory())
	default:
		t.Fatalf("unknown db kind %q", kind)
	}
	db, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", kind, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// TestKeyspaceConformance runs the same cases against every kind of
// database, like go-libp2p's transport suites.
func TestKeyspaceConformance(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, db *DB)
	}{
		{"get missing is ErrNotFound", func(t *testing.T, db *DB) {
			ks := db.Keyspace("market")
			if _, err := ks.Get([]byte("nope")); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(missing) err = %v; want ErrNotFound", err)
			}
			if ok, err := ks.Has([]byte("nope")); ok || err != nil {
				t.Fatalf("Has(missing) = %v, %v; want false, nil", ok, err)
			}
		}},
		{"put get overwrite delete", func(t *testing.T, db *DB) {
			ks := db.Keyspace("consensus")
			mustPut(t, ks, "k", "v1")
			wantGet(t, ks, "k", "v1")
			mustPut(t, ks, "k", "v2")
			wantGet(t, ks, "k", "v2")
			if ok, err := ks.Has([]byte("k")); !ok || err != nil {
				t.Fatalf("Has(k) = %v, %v; want true, nil", ok, err)
			}
			if err := ks.Delete([]byte("k")); err != nil {
				t.Fatal(err)
			}
			if _, err := ks.Get([]byte("k")); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get after Delete err = %v; want ErrNotFound", err)
			}
			if err := ks.Delete([]byte("k")); err != nil {
				t.Fatalf("Delete(absent) = %v; want nil", err)
			}
		}},
		{"caller may reuse buffers", func(t *testing.T, db *DB) {
			ks := db.Keyspace("market")
			buf := []byte("value")
			if err := ks.Put([]byte("k"), buf); err != nil {
				t.Fatal(err)
			}
			copy(buf, "XXXXX")
			got, _ := ks.Get([]byte("k"))
			got[0] = 'Z'
			wantGet(t, ks, "k", "value")
		}},
		{"empty key rejected", func(t *testing.T, db *DB) {
			ks := db.Keyspace("market")
			if err := ks.Put(nil, []byte("v")); !errors.Is(err, ErrEmptyKey) {
				t.Fatalf("Put(nil) err = %v; want ErrEmptyKey", err)
			}
			if _, err := ks.Get([]byte{}); !errors.Is(err, ErrEmptyKey) {
				t.Fatalf("Get(empty) err = %v; want ErrEmptyKey", err)
			}
		}},
		{"keyspaces are isolated", func(t *testing.T, db *DB) {
			a, ab := db.Keyspace("a"), db.Keyspace("ab")
			// Without a length byte, "a"+"bx" and "ab"+"x" would collide.
			mustPut(t, a, "bx", "from-a")
			mustPut(t, ab, "x", "from-ab")
			wantGet(t, a, "bx", "from-a")
			wantGet(t, ab, "x", "from-ab")
			if got := collect(t, a, nil); fmt.Sprint(got) != "[bx=from-a]" {
				t.Fatalf("Iterate(a) = %v; want [bx=from-a]", got)
			}
			if got := collect(t, ab, nil); fmt.Sprint(got) != "[x=from-ab]" {
				t.Fatalf("Iterate(ab) = %v; want [x=from-ab]", got)
			}
		}},
		{"iterate in order with prefix", func(t *testing.T, db *DB) {
			ks := db.Keyspace("blocks")
			for _, k := range []string{"b2", "a1", "b1", "c", "b10"} {
				mustPut(t, ks, k, "v"+k)
			}
			if got := fmt.Sprint(collect(t, ks, []byte("b"))); got != "[b1=vb1 b10=vb10 b2=vb2]" {
				t.Fatalf("Iterate(b) = %s", got)
			}
			if got := len(collect(t, ks, nil)); got != 5 {
				t.Fatalf("Iterate(nil) saw %d keys; want 5", got)
			}
			stop := errors.New("stop")
			n := 0
			err := ks.Iterate(nil, func(k, v []byte) error { n++; return stop })
			if err != stop || n != 1 {
				t.Fatalf("Iterate with failing fn = %v after %d calls; want stop after 1", err, n)
			}
		}},
		{"update is atomic across keyspaces", func(t *testing.T, db *DB) {
			c, m := db.Keyspace("consensus"), db.Keyspace("market")
			err := db.Update(func(tx *Txn) error {
				if err := tx.Put(c, []byte("h"), []byte("1")); err != nil {
					return err
				}
				return tx.Put(m, []byte("lease"), []byte("x"))
			})
			if err != nil {
				t.Fatal(err)
			}
			wantGet(t, c, "h", "1")
			wantGet(t, m, "lease", "x")
			boom := errors.New("boom")
			err = db.Update(func(tx *Txn) error {
				_ = tx.Put(c, []byte("h"), []byte("2"))
				_ = tx.Delete(m, []byte("lease"))
				if v, err := tx.Get(c, []byte("h")); err != nil || string(v) != "2" {
					t.Errorf("read own write = %q, %v", v, err)
				}
				return boom
			})
			if err != boom {
				t.Fatalf("Update err = %v; want the fn's error unchanged", err)
			}
			wantGet(t, c, "h", "1")
			wantGet(t, m, "lease", "x")
		}},
		{"value over MaxValueSize rejected", func(t *testing.T, db *DB) {
			ks := db.Keyspace("consensus")
			if err := ks.Put([]byte("k"), make([]byte, db.MaxValueSize()+1)); !errors.Is(err, ErrValueTooLarge) {
				t.Fatalf("Put(MaxValueSize+1) err = %v; want ErrValueTooLarge", err)
			}
			if err := ks.Put([]byte("k"), make([]byte, min(db.MaxValueSize(), 1<<20))); err != nil {
				t.Fatalf("Put of %d bytes: %v", min(db.MaxValueSize(), 1<<20), err)
			}
		}},
		{"view is read-only", func(t *testing.T, db *DB) {
			ks := db.Keyspace("market")
			err := db.View(func(tx *Txn) error { return tx.Put(ks, []byte("k"), []byte("v")) })
			if !errors.Is(err, ErrReadOnly) {
				t.Fatalf("Put in View err = %v; want ErrReadOnly", err)
			}
		}},
		{"keyspace of another db rejected", func(t *testing.T, db *DB) {
			other := openTestDB(t, "mem")
			foreign := other.Keyspace("market")
			err := db.Update(func(tx *Txn) error { return tx.Put(foreign, []byte("k"), []byte("v")) })
			if !errors.Is(err, ErrBadKeyspace) {
				t.Fatalf("Put with foreign keyspace err = %v; want ErrBadKeyspace", err)
			}
		}},
		{"closed db returns ErrClosed", func(t *testing.T, db *DB) {
			ks := db.Keyspace("market")
			mustPut(t, ks, "k", "v")
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := ks.Get([]byte("k")); !errors.Is(err, ErrClosed) {
				t.Fatalf("Get after Close err = %v; want ErrClosed", err)
			}
			if err := ks.Put([]byte("k"), nil); !errors.Is(err, ErrClosed) {
				t.Fatalf("Put after Close err = %v; want ErrClosed", err)
			}
			if err := db.Close(); !errors.Is(err, ErrClosed) {
				t.Fatalf("second Close err = %v; want ErrClosed", err)
			}
		}},
	}
	for _, kind := range []string{"mem", "disk"} {
		for _, tc := range cases {
			t.Run(kind+"/"+tc.name, func(t *testing.T) { tc.run(t, openTestDB(t, kind)) })
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, WithLowMemory(), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, db.Keyspace("consensus"), "height", "42")
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, WithLowMemory(), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wantGet(t, db.Keyspace("consensus"), "height", "42")
}

func TestOpenRejectsBadInput(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Fatal("Open(\"\") without WithInMemory succeeded")
	}
	if _, err := Open(t.TempDir(), WithLogger(nil)); err == nil {
		t.Fatal("Open with nil logger succeeded")
	}
	db := openTestDB(t, "mem")
	for _, name := range []string{"", "Upper", "has space", "-lead", string(make([]byte, 64))} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Keyspace(%q) did not panic", name)
				}
			}()
			db.Keyspace(name)
		}()
	}
}

func mustPut(t testing.TB, ks *Keyspace, k, v string) {
	t.Helper()
	if err := ks.Put([]byte(k), []byte(v)); err != nil {
		t.Fatalf("Put(%s, %q): %v", ks.Name(), k, err)
	}
}

func wantGet(t testing.TB, ks *Keyspace, k, want string) {
	t.Helper()
	got, err := ks.Get([]byte(k))
	if err != nil || !bytes.Equal(got, []byte(want)) {
		t.Fatalf("Get(%s, %q) = %q, %v; want %q", ks.Name(), k, got, err, want)
	}
}

func collect(t testing.TB, ks *Keyspace, prefix []byte) []string {
	t.Helper()
	var out []string
	if err := ks.Iterate(prefix, func(k, v []byte) error {
		out = append(out, string(k)+"="+string(v))
		return nil
	}); err != nil {
		t.Fatalf("Iterate(%s): %v", ks.Name(), err)
	}
	return out
}

// TestConcurrentUpdatesRetryConflicts increments one counter from several
// goroutines with read-modify-write transactions: badger rejects the losers
// of each race, Update re-runs them, and no increment is lost.
func TestConcurrentUpdatesRetryConflicts(t *testing.T) {
	db := openTestDB(t, "mem")
	ks := db.Keyspace("market")
	const workers, each = 4, 50
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for range each {
				err := db.Update(func(tx *Txn) error {
					v, err := tx.Get(ks, []byte("n"))
					if err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
					n := 0
					if v != nil {
						fmt.Sscan(string(v), &n)
					}
					return tx.Put(ks, []byte("n"), []byte(fmt.Sprint(n+1)))
				})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	wantGet(t, ks, "n", fmt.Sprint(workers*each))
}

// TestDaemonProfileOpens opens the default (daemon) configuration on disk,
// which the other tests do not use.
func TestDaemonProfileOpens(t *testing.T) {
	db, err := Open(t.TempDir(), WithLogger(quietLogger()), WithSyncWrites())
	if err != nil {
		t.Fatal(err)
	}
	ks := db.Keyspace("consensus")
	big := bytes.Repeat([]byte{7}, 4<<20) // a consensus block at its size limit
	if err := ks.Put([]byte("block"), big); err != nil {
		t.Fatal(err)
	}
	if got, err := ks.Get([]byte("block")); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Get of a 4 MiB value: %d bytes, %v", len(got), err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
