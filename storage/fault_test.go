package storage

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// errInjected is the fault faultKV returns.
var errInjected = errors.New("injected fault")

// faultKV fails the failAt-th operation (counting from 0) that reaches the
// backend: opening a snapshot or transaction, each get, set and delete, each
// step of an iteration, each commit and sync. It is pebble's errorfs idea
// one layer up, since badger cannot run on a fault-injecting file system.
type faultKV struct {
	inner kv

	mu     sync.Mutex
	failAt int  // guarded by mu; -1 never fails
	n      int  // operations seen; guarded by mu
	fired  bool // guarded by mu
}

func (f *faultKV) op(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.n
	f.n++
	if n == f.failAt {
		f.fired = true
		return fmt.Errorf("%w: operation %d (%s)", errInjected, n, name)
	}
	return nil
}

func (f *faultKV) view(fn func(r kvReader) error) error {
	if err := f.op("view"); err != nil {
		return err
	}
	return f.inner.view(func(r kvReader) error { return fn(faultTxn{f, r, nil}) })
}

func (f *faultKV) update(fn func(w kvWriter) error) error {
	if err := f.op("begin"); err != nil {
		return err
	}
	return f.inner.update(func(w kvWriter) error {
		if err := fn(faultTxn{f, w, w}); err != nil {
			return err
		}
		// Failing here makes badger discard the transaction: the commit
		// itself fails.
		return f.op("commit")
	})
}

func (f *faultKV) sync() error {
	if err := f.op("sync"); err != nil {
		return err
	}
	return f.inner.sync()
}

func (f *faultKV) close() error { return f.inner.close() }

type faultTxn struct {
	f *faultKV
	r kvReader
	w kvWriter
}

func (t faultTxn) get(key []byte) ([]byte, error) {
	if err := t.f.op("get"); err != nil {
		return nil, err
	}
	return t.r.get(key)
}

func (t faultTxn) iterate(prefix []byte, fn func(key, val []byte) error) error {
	if err := t.f.op("iterate"); err != nil {
		return err
	}
	return t.r.iterate(prefix, func(key, val []byte) error {
		if err := t.f.op("next"); err != nil {
			return err
		}
		return fn(key, val)
	})
}

func (t faultTxn) set(key, val []byte) error {
	if err := t.f.op("set"); err != nil {
		return err
	}
	return t.w.set(key, val)
}

func (t faultTxn) delete(key []byte) error {
	if err := t.f.op("delete"); err != nil {
		return err
	}
	return t.w.delete(key)
}

// model is what the database should hold: keyspace name -> key -> value.
type model map[string]map[string]string

var faultKeyspaces = []string{"consensus", "market", "blocks"}

// faultWorkload runs a fixed, seeded sequence of operations, applying each
// write to m only once the store reported success. It stops at the first
// error. Balances move between keyspaces in atomic updates, so a torn update
// would also break their sum.
func faultWorkload(db *DB, m model) error {
	rng := rand.New(rand.NewPCG(1, 2))
	ks := map[string]*Keyspace{}
	for _, n := range faultKeyspaces {
		ks[n] = db.Keyspace(n)
	}
	// Seed balances in one atomic update.
	err := db.Update(func(tx *Txn) error {
		for _, n := range faultKeyspaces {
			if err := tx.Put(ks[n], []byte("balance"), []byte("100")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range faultKeyspaces {
		m[n]["balance"] = "100"
	}
	for step := range 20 {
		a := faultKeyspaces[rng.IntN(3)]
		switch rng.IntN(5) {
		case 0: // plain put
			k, v := "k"+strconv.Itoa(rng.IntN(6)), "v"+strconv.Itoa(step)
			if err := ks[a].Put([]byte(k), []byte(v)); err != nil {
				return err
			}
			m[a][k] = v
		case 1: // delete
			k := "k" + strconv.Itoa(rng.IntN(6))
			if err := ks[a].Delete([]byte(k)); err != nil {
				return err
			}
			delete(m[a], k)
		case 2, 3: // atomic transfer between two keyspaces plus a log entry
			b := faultKeyspaces[(slices.Index(faultKeyspaces, a)+1+rng.IntN(2))%3]
			amount := rng.IntN(10)
			logKey := "log" + strconv.Itoa(step)
			var newA, newB string
			err := db.Update(func(tx *Txn) error {
				va, err := readInt(tx, ks[a])
				if err != nil {
					return err
				}
				vb, err := readInt(tx, ks[b])
				if err != nil {
					return err
				}
				newA, newB = strconv.Itoa(va-amount), strconv.Itoa(vb+amount)
				if err := tx.Put(ks[a], []byte("balance"), []byte(newA)); err != nil {
					return err
				}
				if err := tx.Put(ks[b], []byte("balance"), []byte(newB)); err != nil {
					return err
				}
				return tx.Put(ks[a], []byte(logKey), []byte(b))
			})
			if err != nil {
				return err
			}
			m[a]["balance"], m[b]["balance"], m[a][logKey] = newA, newB, b
		case 4: // reads must agree with the model
			got := map[string]string{}
			if err := ks[a].Iterate(nil, func(k, v []byte) error {
				got[string(k)] = string(v)
				return nil
			}); err != nil {
				return err
			}
			if !maps.Equal(got, m[a]) {
				return fmt.Errorf("workload: %s holds %v; model %v", a, got, m[a])
			}
		}
	}
	return db.Sync()
}

func readInt(tx *Txn, ks *Keyspace) (int, error) {
	v, err := tx.Get(ks, []byte("balance"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(v))
}

// TestFaultInjection fails operation i of the workload for every i the
// workload performs (pebble's errorfs loop: i = 0, 1, 2, ... until a run
// completes without reaching the fault). Each failure must reach the caller
// as an error, and after every failed run the reopened store must hold
// exactly the writes that reported success: a failed atomic update is absent
// entirely. The runs are independent, so they go four at a time (opening and
// closing badger on disk is mostly waiting for fsync).
func TestFaultInjection(t *testing.T) {
	clean := runFaulted(t, -1)
	if clean.err != nil || clean.fired {
		t.Fatalf("workload without faults: %v", clean.err)
	}
	if clean.ops < 50 {
		t.Fatalf("workload performs only %d operations; too few to exercise faults", clean.ops)
	}
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range clean.ops {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := runFaulted(t, i)
			switch {
			case !r.fired:
				t.Errorf("fault %d was never reached though a clean run performs %d operations", i, clean.ops)
			case r.err == nil:
				t.Errorf("fault %d was injected but the workload reported success", i)
			case !errors.Is(r.err, errInjected):
				t.Errorf("fault %d: workload error %v does not wrap the injected fault", i, r.err)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d fault positions checked", clean.ops)
}

type faultRun struct {
	err   error
	fired bool
	ops   int
}

// runFaulted runs the workload on a fresh on-disk store failing operation
// failAt (-1: none), then closes, reopens and checks the store.
func runFaulted(t *testing.T, failAt int) faultRun {
	dir := t.TempDir()
	fk := &faultKV{failAt: failAt}
	db, err := Open(dir, WithLowMemory(), WithLogger(quietLogger()),
		func(c *config) error { c.wrapKV = func(inner kv) kv { fk.inner = inner; return fk }; return nil })
	if err != nil {
		t.Errorf("fault %d: open: %v", failAt, err)
		return faultRun{err: err}
	}
	m := model{}
	for _, n := range faultKeyspaces {
		m[n] = map[string]string{}
	}
	werr := faultWorkload(db, m)
	if err := db.Close(); err != nil {
		t.Errorf("fault %d: Close: %v", failAt, err)
	}
	fk.mu.Lock()
	r := faultRun{err: werr, fired: fk.fired, ops: fk.n}
	fk.mu.Unlock()
	checkStore(t, dir, m, failAt)
	return r
}

// checkStore reopens dir without faults and compares every key, in every
// keyspace and outside them, with the model; balances must still sum to 300.
func checkStore(t *testing.T, dir string, want model, fault int) {
	t.Helper()
	db, err := Open(dir, WithLowMemory(), WithLogger(quietLogger()))
	if err != nil {
		t.Errorf("fault %d: reopen: %v", fault, err)
		return
	}
	defer db.Close()
	got := model{}
	total, sum := 0, 0
	for _, n := range faultKeyspaces {
		got[n] = map[string]string{}
		if err := db.Keyspace(n).Iterate(nil, func(k, v []byte) error {
			got[n][string(k)] = string(v)
			if string(k) == "balance" {
				b, _ := strconv.Atoi(string(v))
				sum += b
			}
			total++
			return nil
		}); err != nil {
			t.Errorf("fault %d: iterate %s: %v", fault, n, err)
			return
		}
	}
	all := 0
	if err := db.kv.view(func(r kvReader) error {
		return r.iterate(nil, func(k, v []byte) error { all++; return nil })
	}); err != nil {
		t.Errorf("fault %d: %v", fault, err)
		return
	}
	for _, n := range faultKeyspaces {
		if !maps.Equal(got[n], want[n]) {
			t.Errorf("fault %d: after reopen %s = %v; want %v", fault, n, got[n], want[n])
		}
	}
	if all != total {
		t.Errorf("fault %d: %d keys in the database, %d in keyspaces", fault, all, total)
	}
	if len(want["consensus"]) > 0 && sum != 300 {
		t.Errorf("fault %d: balances sum to %d; want 300", fault, sum)
	}
}
