package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Sentinel errors of the key-value store. Match them with errors.Is.
var (
	ErrNotFound      = errors.New("storage: not found")
	ErrClosed        = errors.New("storage: database closed")
	ErrReadOnly      = errors.New("storage: write in a read-only transaction")
	ErrBadKeyspace   = errors.New("storage: keyspace of another database")
	ErrEmptyKey      = errors.New("storage: empty key")
	ErrTxnConflicts  = errors.New("storage: transaction kept conflicting")
	ErrValueTooLarge = errors.New("storage: value too large")
)

// maxUpdateAttempts bounds how often Update re-runs a transaction that lost
// a conflict with a concurrent one.
const maxUpdateAttempts = 64

type config struct {
	inMemory   bool
	lowMemory  bool
	syncWrites bool
	logger     *slog.Logger
	wrapKV     func(kv) kv // tests: fault injection between keyspaces and badger
}

// Option configures Open.
type Option func(*config) error

// WithInMemory keeps the whole database in memory (for tests); dir is
// ignored. It implies WithLowMemory. Badger then holds values under 1 MiB
// (see DB.MaxValueSize); a test that stores larger values opens a
// database in a temporary directory instead.
func WithInMemory() Option {
	return func(c *config) error { c.inMemory, c.lowMemory = true, true; return nil }
}

// WithLowMemory sizes badger's memtables and caches for a small footprint
// (a few MiB per database instead of a few hundred), for tests that run many
// nodes in one process and for small machines.
func WithLowMemory() Option {
	return func(c *config) error { c.lowMemory = true; return nil }
}

// WithSyncWrites makes every committed transaction durable before Update
// returns, at the cost of an fsync per commit. Without it a crash may lose
// the last commits (never half of one).
func WithSyncWrites() Option {
	return func(c *config) error { c.syncWrites = true; return nil }
}

// WithLogger sets the logger; badger's own messages go to it too, its info
// chatter at debug level. The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("storage: nil logger")
		}
		c.logger = l
		return nil
	}
}

// DB is a node's database: one badger instance split into keyspaces. It is
// safe for concurrent use.
type DB struct {
	kv       kv
	log      *slog.Logger
	g        gate
	maxValue int
	retryMu  sync.Mutex // held by an Update while it re-runs after a conflict
}

// Open opens (creating if needed) the database in dir. Defaults: on disk,
// sized for a daemon (three 32 MiB memtables, 32 MiB block cache, 16 MiB
// index cache, values over 64 KiB in 128 MiB value-log files), no fsync per
// commit, logging to slog.Default().
func Open(dir string, opts ...Option) (*DB, error) {
	cfg := config{logger: slog.Default()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if !cfg.inMemory && dir == "" {
		return nil, errors.New("storage: open: empty directory (use WithInMemory for a database without one)")
	}
	log := cfg.logger.With("subsystem", "storage")
	bopts := badgerOptions(dir, cfg, log)
	bdb, err := badger.Open(bopts)
	if err != nil {
		return nil, fmt.Errorf("storage: open %q: %w", dir, err)
	}
	var store kv = badgerKV{bdb}
	if cfg.wrapKV != nil {
		store = cfg.wrapKV(store)
	}
	maxValue := int(bopts.ValueLogFileSize) - 1<<10 // room for the entry header
	if cfg.inMemory {
		// No value log: values live in the LSM tree, and badger v4.9.6
		// accepts a value of exactly the threshold but then panics writing
		// it (txn checks len > threshold, the write len < threshold).
		maxValue = int(bopts.ValueThreshold) - 1
	}
	db := &DB{kv: store, log: log, maxValue: maxValue}
	db.g.init()
	return db, nil
}

func badgerOptions(dir string, cfg config, log *slog.Logger) badger.Options {
	if cfg.inMemory {
		dir = ""
	}
	o := badger.DefaultOptions(dir).
		WithInMemory(cfg.inMemory).
		WithSyncWrites(cfg.syncWrites).
		WithLogger(badgerLogger{log}).
		WithMetricsEnabled(false). // badger's metrics are process-global expvars
		// Daemon sizing: the node shares its machine with jobs and big
		// transfers, so badger gets a bounded share (about 150 MiB at most
		// in memtables and caches) rather than its defaults (over 500).
		WithMemTableSize(32 << 20).
		WithNumMemtables(3).
		WithValueThreshold(64 << 10).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(16 << 20).
		WithValueLogFileSize(128 << 20)
	if cfg.lowMemory {
		// 8 MiB memtables allow transactions of about 1.2 MiB or 13,000
		// writes (badger caps a transaction at 15% of a memtable).
		o = o.WithMemTableSize(8 << 20).
			WithNumMemtables(2).
			WithNumLevelZeroTables(2).
			WithNumLevelZeroTablesStall(8).
			WithBaseTableSize(1 << 20).
			WithBaseLevelSize(4 << 20).
			WithCompression(options.None).
			WithBlockCacheSize(0).
			WithIndexCacheSize(0).
			WithNumCompactors(2).
			WithNumGoroutines(2).
			WithValueLogFileSize(16 << 20)
	}
	if cfg.inMemory {
		// Without a value log every value must fit under the threshold,
		// whose ceiling is 1 MiB.
		o = o.WithValueThreshold(1 << 20)
	}
	return o
}

// Close closes the database after in-flight operations finish. Operations
// started after Close return ErrClosed.
func (db *DB) Close() error {
	if !db.g.close() {
		return ErrClosed
	}
	return wrapKV("close", db.kv.close())
}

// MaxValueSize is the largest value Put accepts: just under 1 MiB in memory,
// under the value log file size (16 MiB low-memory, 128 MiB default) on disk.
func (db *DB) MaxValueSize() int { return db.maxValue }

// Sync makes every commit so far durable.
func (db *DB) Sync() error {
	if !db.g.enter() {
		return ErrClosed
	}
	defer db.g.leave()
	return wrapKV("sync", db.kv.sync())
}

// keyspaceName limits keyspace names to a readable set, so they can appear
// in logs and tools without escaping.
var keyspaceName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Keyspace is a namespace in the database: its keys are stored under a
// prefix derived from its name, so two keyspaces never see each other's keys.
type Keyspace struct {
	db     *DB
	name   string
	prefix []byte
}

// Keyspace returns the keyspace called name (lower-case letters, digits,
// '.', '_', '-', at most 63 characters). Names are fixed in code, so an
// invalid one is a programming error and panics.
func (db *DB) Keyspace(name string) *Keyspace {
	if !keyspaceName.MatchString(name) {
		panic(fmt.Sprintf("storage: invalid keyspace name %q", name))
	}
	// A length byte before the name keeps "a" from being a prefix of "ab".
	p := append([]byte{byte(len(name))}, name...)
	return &Keyspace{db: db, name: name, prefix: p}
}

// Name is the keyspace's name.
func (k *Keyspace) Name() string { return k.name }

func (k *Keyspace) key(key []byte) ([]byte, error) {
	if len(key) == 0 {
		return nil, ErrEmptyKey
	}
	out := make([]byte, 0, len(k.prefix)+len(key))
	return append(append(out, k.prefix...), key...), nil
}

// Get returns the value under key, or ErrNotFound.
func (k *Keyspace) Get(key []byte) ([]byte, error) {
	var val []byte
	err := k.db.View(func(tx *Txn) error {
		var err error
		val, err = tx.Get(k, key)
		return err
	})
	return val, err
}

// Has reports whether key is present.
func (k *Keyspace) Has(key []byte) (bool, error) {
	_, err := k.Get(key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Put stores val under key.
func (k *Keyspace) Put(key, val []byte) error {
	return k.db.Update(func(tx *Txn) error { return tx.Put(k, key, val) })
}

// Delete removes key; deleting an absent key is not an error.
func (k *Keyspace) Delete(key []byte) error {
	return k.db.Update(func(tx *Txn) error { return tx.Delete(k, key) })
}

// Iterate calls fn for every key starting with prefix (nil for all), in
// byte order, from one consistent snapshot; key excludes the keyspace's own
// prefix. fn may keep key and val. An error from fn stops the iteration and
// is returned.
func (k *Keyspace) Iterate(prefix []byte, fn func(key, val []byte) error) error {
	return k.db.View(func(tx *Txn) error { return tx.Iterate(k, prefix, fn) })
}

// Txn is a transaction across keyspaces, passed to the function given to
// DB.Update or DB.View. It must not be used after that function returns.
type Txn struct {
	db *DB
	r  kvReader
	w  kvWriter // nil in View
}

// View runs fn in a read-only snapshot of the whole database.
func (db *DB) View(fn func(tx *Txn) error) error {
	if !db.g.enter() {
		return ErrClosed
	}
	defer db.g.leave()
	var fnErr error
	err := db.kv.view(func(r kvReader) error {
		fnErr = fn(&Txn{db: db, r: r})
		return fnErr
	})
	if err != nil && err == fnErr {
		return err
	}
	return wrapKV("view", err)
}

// Update runs fn in a read-write transaction and commits it atomically: all
// of its writes, in every keyspace, are applied, or none is. If fn returns an
// error nothing is written and Update returns that error. When a concurrent
// transaction changed what fn read, fn runs again on fresh data, so fn must
// have no effects outside tx (and must not call Update itself).
func (db *DB) Update(fn func(tx *Txn) error) error {
	if !db.g.enter() {
		return ErrClosed
	}
	defer db.g.leave()
	for attempt := range maxUpdateAttempts {
		if attempt == 1 {
			// Transactions that lost a conflict retry one at a time, so
			// they cannot keep beating each other; only first attempts
			// still race with them.
			db.retryMu.Lock()
			defer db.retryMu.Unlock()
		}
		var fnErr error
		err := db.kv.update(func(w kvWriter) error {
			fnErr = fn(&Txn{db: db, r: w, w: w})
			return fnErr
		})
		switch {
		case err == nil:
			return nil
		case fnErr != nil && err == fnErr:
			return err // the caller's own error, as it gave it
		case !errors.Is(err, badger.ErrConflict):
			return wrapKV("commit", err)
		}
		if attempt > 0 {
			// Let the first attempts that keep winning finish.
			time.Sleep(time.Duration(attempt) * 50 * time.Microsecond)
		}
	}
	return ErrTxnConflicts
}

func (tx *Txn) check(ks *Keyspace) error {
	if ks == nil || ks.db != tx.db {
		return ErrBadKeyspace
	}
	return nil
}

// Get returns the value under key in ks, or ErrNotFound.
func (tx *Txn) Get(ks *Keyspace, key []byte) ([]byte, error) {
	if err := tx.check(ks); err != nil {
		return nil, err
	}
	k, err := ks.key(key)
	if err != nil {
		return nil, err
	}
	val, err := tx.r.get(k)
	return val, wrapKV("get", err)
}

// Has reports whether key is present in ks.
func (tx *Txn) Has(ks *Keyspace, key []byte) (bool, error) {
	_, err := tx.Get(ks, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Put stores val under key in ks.
func (tx *Txn) Put(ks *Keyspace, key, val []byte) error {
	if tx.w == nil {
		return ErrReadOnly
	}
	if err := tx.check(ks); err != nil {
		return err
	}
	k, err := ks.key(key)
	if err != nil {
		return err
	}
	if len(val) > tx.db.maxValue {
		return fmt.Errorf("%w: %d bytes > %d", ErrValueTooLarge, len(val), tx.db.maxValue)
	}
	// badger keeps the slices until commit; copy val so the caller may
	// reuse its buffer.
	return wrapKV("put", tx.w.set(k, append([]byte(nil), val...)))
}

// Delete removes key from ks.
func (tx *Txn) Delete(ks *Keyspace, key []byte) error {
	if tx.w == nil {
		return ErrReadOnly
	}
	if err := tx.check(ks); err != nil {
		return err
	}
	k, err := ks.key(key)
	if err != nil {
		return err
	}
	return wrapKV("delete", tx.w.delete(k))
}

// Iterate is Keyspace.Iterate inside the transaction.
func (tx *Txn) Iterate(ks *Keyspace, prefix []byte, fn func(key, val []byte) error) error {
	if err := tx.check(ks); err != nil {
		return err
	}
	p := append(append([]byte(nil), ks.prefix...), prefix...)
	var fnErr error
	err := tx.r.iterate(p, func(key, val []byte) error {
		fnErr = fn(append([]byte(nil), key[len(ks.prefix):]...), append([]byte(nil), val...))
		return fnErr
	})
	if err != nil && err == fnErr {
		return err
	}
	return wrapKV("iterate", err)
}

// gate lets operations run until Close and makes Close wait for those in
// flight. Unlike an RWMutex, an operation that starts inside another (a
// callback calling Get) while Close waits fails with ErrClosed instead of
// deadlocking.
type gate struct {
	mu     sync.Mutex
	cond   *sync.Cond // signalled on mu when n drops to zero
	n      int        // operations in flight; guarded by mu
	closed bool       // guarded by mu
}

func (g *gate) init() { g.cond = sync.NewCond(&g.mu) }

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *gate) leave() {
	g.mu.Lock()
	g.n--
	if g.n == 0 {
		g.cond.Broadcast()
	}
	g.mu.Unlock()
}

// close marks the gate closed and waits for operations in flight; false if
// it was already closed.
func (g *gate) close() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.closed = true
	for g.n > 0 {
		g.cond.Wait()
	}
	return true
}

// badgerLogger sends badger's log lines to slog. Badger reports routine
// compaction and start-up steps at info level; those go to debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(trimNL(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(trimNL(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(trimNL(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.l.Debug(trimNL(fmt.Sprintf(f, a...))) }

func trimNL(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}
