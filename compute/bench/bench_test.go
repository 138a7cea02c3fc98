package bench_test

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/gpunode/gpunode/compute/bench"
	"github.com/gpunode/gpunode/examples/matmul/mat"
	"github.com/gpunode/gpunode/protocol"
)

var tiny = bench.Class{Name: "tiny", N: 64, MaxTime: time.Second}

func TestVerify(t *testing.T) {
	ch := bench.Challenge{Class: "tiny", N: 64, Seed: 99}
	resp, err := bench.Solve(ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := bench.Verify(ch, tiny, resp, 500*time.Millisecond, 1); err != nil {
		t.Fatalf("honest answer rejected: %v", err)
	}
	if err := bench.Verify(ch, tiny, resp, 1500*time.Millisecond, 1); !errors.Is(err, bench.ErrTooSlow) {
		t.Fatalf("slow answer: %v; want ErrTooSlow", err)
	}
	c, _ := mat.Decode(resp.C, 64)
	c[64*10+7] += 1
	if err := bench.Verify(ch, tiny, bench.Response{C: mat.Encode(c)}, time.Millisecond, 1); !errors.Is(err, bench.ErrWrongAnswer) {
		t.Fatalf("wrong answer: %v; want ErrWrongAnswer", err)
	}
	other, _ := bench.Solve(bench.Challenge{Class: "tiny", N: 64, Seed: 100})
	if err := bench.Verify(ch, tiny, other, time.Millisecond, 1); !errors.Is(err, bench.ErrWrongAnswer) {
		t.Fatalf("answer to another seed: %v; want ErrWrongAnswer", err)
	}
	if err := bench.Verify(ch, tiny, bench.Response{C: resp.C[:100]}, time.Millisecond, 1); !errors.Is(err, bench.ErrWrongAnswer) {
		t.Fatalf("truncated answer: %v; want ErrWrongAnswer", err)
	}
	if err := bench.Verify(bench.Challenge{Class: "tiny", N: 32, Seed: 1}, tiny, resp, time.Millisecond, 1); !errors.Is(err, bench.ErrMalformed) {
		t.Fatalf("challenge not of the class: %v; want ErrMalformed", err)
	}
}

// stepClock advances by step on every reading, so the verifier measures
// exactly step between sending a challenge and reading the answer.
type stepClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

type pair struct {
	validator, provider host.Host
	key                 crypto.PrivKey
}

func newPair(t *testing.T) pair {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	var hs []host.Host
	var keys []crypto.PrivKey
	for i := range 2 {
		k, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		h, err := mn.AddPeer(k, ma.StringCast("/ip4/127.0.0.1/tcp/"+string(rune('1'+i))+"000"))
		if err != nil {
			t.Fatal(err)
		}
		hs, keys = append(hs, h), append(keys, k)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	return pair{validator: hs[0], provider: hs[1], key: keys[0]}
}

const chainID = "devnet"

var proto = protocol.StreamProtocol("devnet", bench.ProtocolName)

func verifier(p pair, step time.Duration) *bench.Verifier {
	return bench.NewVerifier(p.validator, proto, p.key, chainID,
		bench.WithClasses([]bench.Class{tiny}),
		bench.WithClock(&stepClock{t: time.Unix(1_700_000_000, 0), step: step}),
		bench.WithRand(mrand.New(mrand.NewPCG(1, 2))))
}

func TestHonestProviderPasses(t *testing.T) {
	p := newPair(t)
	bench.Serve(p.provider, proto)
	res, err := verifier(p, 10*time.Millisecond).Challenge(context.Background(), p.provider.ID(), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if res.Err != nil || res.Attestation.Verdict != bench.VerdictPass || res.Attestation.ElapsedMs != 10 {
		t.Fatalf("result %+v, err %v; want pass in 10ms", res.Attestation, res.Err)
	}
	att, author, err := bench.OpenAttestation(res.Sealed, chainID)
	if err != nil {
		t.Fatal(err)
	}
	if author != p.validator.ID() {
		t.Fatalf("signed by %s; want the validator %s", author, p.validator.ID())
	}
	if prov, _ := att.ProviderID(); prov != p.provider.ID() || att.Class != "tiny" || att.Verdict != bench.VerdictPass {
		t.Fatalf("attestation %+v", att)
	}
	if _, _, err := bench.OpenAttestation(res.Sealed, "other-chain"); !errors.Is(err, protocol.ErrWrongChain) {
		t.Fatalf("open on another chain: %v", err)
	}
}

func TestWrongAnswerRejected(t *testing.T) {
	p := newPair(t)
	bench.Serve(p.provider, proto, bench.WithSolver(func(_ context.Context, ch bench.Challenge) (bench.Response, error) {
		r, err := bench.Solve(ch)
		r.C[17] ^= 1 // one entry off
		return r, err
	}))
	res, err := verifier(p, time.Millisecond).Challenge(context.Background(), p.provider.ID(), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res.Err, bench.ErrWrongAnswer) || res.Attestation.Verdict != bench.VerdictWrong {
		t.Fatalf("verdict %q err %v; want wrong", res.Attestation.Verdict, res.Err)
	}
}

func TestSlowAnswerRejected(t *testing.T) {
	p := newPair(t)
	bench.Serve(p.provider, proto)
	res, err := verifier(p, 2*time.Second).Challenge(context.Background(), p.provider.ID(), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res.Err, bench.ErrTooSlow) || res.Attestation.Verdict != bench.VerdictSlow || res.Attestation.ElapsedMs != 2000 {
		t.Fatalf("attestation %+v err %v; want slow after 2000ms", res.Attestation, res.Err)
	}
}

func TestProviderRefusesOversizedChallenge(t *testing.T) {
	p := newPair(t)
	bench.Serve(p.provider, proto, bench.WithMaxN(32))
	res, err := verifier(p, time.Millisecond).Challenge(context.Background(), p.provider.ID(), "tiny")
	if err == nil {
		t.Fatalf("challenge above the provider's limit answered: %+v", res)
	}
	if _, err := verifier(p, time.Millisecond).Challenge(context.Background(), p.provider.ID(), "nope"); !errors.Is(err, bench.ErrUnknownClass) {
		t.Fatalf("unknown class: %v", err)
	}
}

func TestNoAnswerNoAttestation(t *testing.T) {
	p := newPair(t)
	block := make(chan struct{})
	defer close(block)
	bench.Serve(p.provider, proto, bench.WithSolver(func(ctx context.Context, ch bench.Challenge) (bench.Response, error) {
		<-block
		return bench.Response{}, errors.New("never")
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := verifier(p, time.Millisecond).Challenge(ctx, p.provider.ID(), "tiny")
	if err == nil || res != nil {
		t.Fatalf("Challenge = %+v, %v; want an error and nothing signed", res, err)
	}
}

func FuzzDecodeChallenge(f *testing.F) {
	f.Add(protocol.MustMarshal(bench.Challenge{Class: "gpu", N: 2048, Seed: 7}))
	f.Add([]byte{0xa0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, err := bench.DecodeChallenge(b)
		if err != nil {
			return
		}
		if ch.Validate() != nil {
			t.Fatal("accepted an invalid challenge")
		}
		again, err := protocol.Marshal(ch)
		if err != nil || string(again) != string(b) {
			t.Fatal("accepted bytes do not re-encode identically")
		}
	})
}
