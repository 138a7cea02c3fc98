package wasm

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
)

// tinyModule is an empty wasip1 command made distinct by a custom section.
func tinyModule(id byte) []byte {
	return []byte{
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
		0x03, 0x02, 0x01, 0x00,
		0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00,
		0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b,
		0x00, 0x03, 0x01, 'x', id, // custom section "x" holding id
	}
}

func TestModuleCacheEvictsLeastRecentlyUsed(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	c := newModuleCache(2)
	acq := func(id byte) (wazero.CompiledModule, func()) {
		cm, rel, err := c.acquire(ctx, rt, tinyModule(id))
		if err != nil {
			t.Fatal(err)
		}
		return cm, rel
	}
	a1, relA1 := acq(1)
	a2, relA2 := acq(1)
	if a1 != a2 {
		t.Fatal("same module compiled twice")
	}
	relA2()
	_, relB := acq(2)
	relB()
	_, relC := acq(3) // evicts module 1 (least recently used), still held by relA1
	relC()
	if len(c.entries) != 2 {
		t.Fatalf("%d entries; want 2", len(c.entries))
	}
	if _, err := rt.InstantiateModule(ctx, a1, wazero.NewModuleConfig().WithName("")); err != nil {
		t.Fatalf("evicted module closed while in use: %v", err)
	}
	relA1()
	relA1() // releasing twice is harmless
	if a3, rel := acq(1); a3 == a1 {
		t.Fatal("evicted module served again")
	} else {
		rel()
	}
}
