package market

import (
	"math/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/protocol"
)

const testChain = "market-test"

// t0 is the fixed "now" of the tests.
var t0 = time.UnixMilli(1_800_000_000_000)

type testKey struct {
	priv crypto.PrivKey
	id   string
}

// key returns a deterministic Ed25519 key for seed.
func key(t testing.TB, seed int64) testKey {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.New(rand.NewSource(seed)))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{priv, id.String()}
}

func seal(t testing.TB, k testKey, kind protocol.Kind, body any) []byte {
	t.Helper()
	raw, _, err := protocol.Seal(k.priv, testChain, kind, t0, body)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

const gib = 1 << 30

func testOffer(provider string, seq uint64) *Offer {
	return &Offer{
		Provider:  provider,
		Seq:       seq,
		IssuedAt:  t0.UnixMilli(),
		TTL:       60,
		Status:    StatusIdle,
		GPUs:      []GPUGroup{{Model: "A100", VRAM: 80 * gib, Count: 4}, {Model: "RTX4090", VRAM: 24 * gib, Count: 2}},
		CPUCores:  64,
		Memory:    512 * gib,
		Executors: []string{"process", "wasm"},
		Region:    "eu",
		Prices: []Price{
			{Model: "", Executor: "wasm", PerSegment: 5},
			{Model: "A100", Executor: "wasm", PerSegment: 100},
			{Model: "RTX4090", Executor: "wasm", PerSegment: 40},
		},
		Stake:     1000,
		FreeSlots: 8,
	}
}

func testSpec() JobSpec {
	return JobSpec{
		Program:  protocol.NewCID(protocol.BlockCID([]byte("program"))),
		Inputs:   nil,
		Require:  Requirements{GPUModels: []string{"A100", "RTX4090"}, MinVRAM: 20 * gib, GPUCount: 1, Executor: "wasm"},
		Segments: 10,
		MaxPrice: 120,
		Deadline: 600,
		Verify:   "replicate:1",
	}
}

func testRequest(t testing.TB, renter string, spec JobSpec) *JobRequest {
	t.Helper()
	id, err := spec.ID()
	if err != nil {
		t.Fatal(err)
	}
	return &JobRequest{Job: id, Spec: spec, Renter: renter, CloseAt: t0.Add(30 * time.Second).UnixMilli()}
}

// jobMap is a JobLookup.
type jobMap map[string]*JobRequest

func (m jobMap) Job(id protocol.CID) (*JobRequest, bool) {
	r, ok := m[id.String()]
	return r, ok
}

// stakeSet is a StakeChecker.
type stakeSet map[string]bool

func (s stakeSet) Staked(p string) bool { return s[p] }

func newBook(t testing.TB, opts ...BookOption) *OrderBook {
	t.Helper()
	b, err := NewOrderBook(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
