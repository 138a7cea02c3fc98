package wasm

import (
	"context"
	"crypto/sha256"
	"sync"

	"github.com/tetratelabs/wazero"
)

// moduleCache keeps recently used compiled modules in memory, so the
// segments of one job (same module, many runs) compile once. The disk cache
// (WithCacheDir) survives restarts; this one saves even loading from disk.
type moduleCache struct {
	max int

	mu      sync.Mutex // guards entries, clock
	entries map[[32]byte]*cachedModule
	clock   uint64
}

type cachedModule struct {
	cm      wazero.CompiledModule
	refs    int    // runs using cm now
	used    uint64 // clock at last acquire
	evicted bool   // out of entries; close when refs reaches 0
}

func newModuleCache(max int) *moduleCache {
	return &moduleCache{max: max, entries: map[[32]byte]*cachedModule{}}
}

// acquire returns the compiled form of module and a release func that the
// caller must call when its run is over.
func (c *moduleCache) acquire(ctx context.Context, rt wazero.Runtime, module []byte) (wazero.CompiledModule, func(), error) {
	key := sha256.Sum256(module)
	c.mu.Lock()
	if m, ok := c.entries[key]; ok {
		m.refs++
		c.clock++
		m.used = c.clock
		c.mu.Unlock()
		return m.cm, c.releaser(m), nil
	}
	c.mu.Unlock()

	cm, err := rt.CompileModule(ctx, module)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.entries[key]; ok { // compiled concurrently by another run
		m.refs++
		_ = cm.Close(context.Background())
		return m.cm, c.releaser(m), nil
	}
	c.clock++
	m := &cachedModule{cm: cm, refs: 1, used: c.clock}
	c.entries[key] = m
	c.evictLocked()
	return cm, c.releaser(m), nil
}

func (c *moduleCache) releaser(m *cachedModule) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			m.refs--
			if m.evicted && m.refs == 0 {
				_ = m.cm.Close(context.Background())
			}
		})
	}
}

// evictLocked drops least recently used modules beyond max.
func (c *moduleCache) evictLocked() {
	for len(c.entries) > c.max {
		var oldKey [32]byte
		var old *cachedModule
		for k, m := range c.entries {
			if old == nil || m.used < old.used {
				oldKey, old = k, m
			}
		}
		delete(c.entries, oldKey)
		old.evicted = true
		if old.refs == 0 {
			_ = old.cm.Close(context.Background())
		}
	}
}

func (c *moduleCache) closeAll(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, m := range c.entries {
		delete(c.entries, k)
		m.evicted = true
		if m.refs == 0 {
			_ = m.cm.Close(ctx)
		}
	}
}
