package bft_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"github.com/gpunode/gpunode/consensus/bft"
)

func testVals(t *testing.T, powers ...int64) *bft.ValidatorSet {
	t.Helper()
	var vals []bft.Validator
	for i, p := range powers {
		id := fmt.Sprintf("v%d", i)
		vals = append(vals, bft.Validator{ID: id, PubKey: testKey(id).Public().(ed25519.PublicKey), Power: p})
	}
	vs, err := bft.NewValidatorSet(vals)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestNewValidatorSetRejects(t *testing.T) {
	pub := testKey("x").Public().(ed25519.PublicKey)
	tests := []struct {
		name string
		vals []bft.Validator
	}{
		{"empty", nil},
		{"empty ID", []bft.Validator{{ID: "", PubKey: pub, Power: 1}}},
		{"short key", []bft.Validator{{ID: "a", PubKey: pub[:31], Power: 1}}},
		{"zero power", []bft.Validator{{ID: "a", PubKey: pub, Power: 0}}},
		{"negative power", []bft.Validator{{ID: "a", PubKey: pub, Power: -5}}},
		{"duplicate", []bft.Validator{{ID: "a", PubKey: pub, Power: 1}, {ID: "a", PubKey: pub, Power: 2}}},
		{"overflow", []bft.Validator{{ID: "a", PubKey: pub, Power: bft.MaxTotalPower}, {ID: "b", PubKey: pub, Power: 1}}},
	}
	for _, tt := range tests {
		if _, err := bft.NewValidatorSet(tt.vals); !errors.Is(err, bft.ErrInvalidValidators) {
			t.Errorf("%s: NewValidatorSet error = %v; want ErrInvalidValidators", tt.name, err)
		}
	}
}

func TestValidatorSetQuorum(t *testing.T) {
	vs := testVals(t, 1, 1, 1, 1) // total 4
	for power, want := range map[int64]bool{2: false, 3: true, 4: true} {
		if got := vs.HasQuorum(power); got != want {
			t.Errorf("HasQuorum(%d) of 4 = %v; want %v", power, got, want)
		}
	}
	for power, want := range map[int64]bool{1: false, 2: true} {
		if got := vs.HasOneThird(power); got != want {
			t.Errorf("HasOneThird(%d) of 4 = %v; want %v", power, got, want)
		}
	}
	vs = testVals(t, 3, 3, 3) // total 9: 6 is exactly 2/3, not more
	if vs.HasQuorum(6) || !vs.HasQuorum(7) || vs.HasOneThird(3) || !vs.HasOneThird(4) {
		t.Errorf("quorum thresholds wrong at total 9")
	}
}

func TestProposerOrder(t *testing.T) {
	vs := testVals(t, 1, 2, 3, 4)
	counts := map[string]int{}
	const heights = 5000
	for h := uint64(1); h <= heights; h++ {
		order := vs.ProposerOrder(h)
		seen := map[string]bool{}
		for _, id := range order {
			seen[id] = true
		}
		if len(order) != 4 || len(seen) != 4 {
			t.Fatalf("height %d: order %v is not a permutation", h, order)
		}
		if vs.Proposer(h, 5) != order[1] {
			t.Fatalf("height %d: Proposer(h, 5) = %s; want order[1] = %s", h, vs.Proposer(h, 5), order[1])
		}
		counts[order[0]]++
	}
	// Round-0 proposers are stake-weighted: v_i has power i+1 of 10.
	for i := range 4 {
		id := fmt.Sprintf("v%d", i)
		want := float64(heights) * float64(i+1) / 10
		if got := float64(counts[id]); got < 0.85*want || got > 1.15*want {
			t.Errorf("%s proposed first %v times in %d heights; want about %v", id, got, heights, want)
		}
	}
	// Deterministic, and a different set gives a different order somewhere.
	other := testVals(t, 1, 2, 3, 5)
	differ := false
	for h := uint64(1); h <= 50; h++ {
		if fmt.Sprint(vs.ProposerOrder(h)) != fmt.Sprint(testVals(t, 1, 2, 3, 4).ProposerOrder(h)) {
			t.Fatalf("order at height %d not deterministic", h)
		}
		differ = differ || fmt.Sprint(vs.ProposerOrder(h)) != fmt.Sprint(other.ProposerOrder(h))
	}
	if !differ {
		t.Errorf("changing a power never changed the order")
	}
}

func signedPrecommit(h uint64, r int32, hash bft.Hash, who string) bft.CommitSig {
	v := bft.Vote{Type: bft.Precommit, Height: h, Round: r, BlockHash: hash, Validator: who}
	return bft.CommitSig{Validator: who, Signature: ed25519.Sign(testKey(who), bft.VoteSignBytes("c", &v))}
}

func TestCertificateVerify(t *testing.T) {
	vs := testVals(t, 1, 1, 1, 1)
	a := valueOf("A").Hash
	good := func() bft.Certificate {
		return bft.Certificate{Height: 5, Round: 2, BlockHash: a, Signatures: []bft.CommitSig{
			signedPrecommit(5, 2, a, "v0"), signedPrecommit(5, 2, a, "v1"), signedPrecommit(5, 2, a, "v3")}}
	}
	c := good()
	if err := c.Verify("c", vs); err != nil {
		t.Fatalf("valid certificate: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(c *bft.Certificate)
		want   error
	}{
		{"two thirds only", func(c *bft.Certificate) { c.Signatures = c.Signatures[:2] }, bft.ErrInsufficientPower},
		{"duplicate signer", func(c *bft.Certificate) { c.Signatures[2] = c.Signatures[0] }, bft.ErrInvalidMessage},
		{"unknown signer", func(c *bft.Certificate) { c.Signatures[2] = signedPrecommit(5, 2, a, "v9") }, bft.ErrUnknownValidator},
		{"unsorted", func(c *bft.Certificate) { c.Signatures[0], c.Signatures[1] = c.Signatures[1], c.Signatures[0] }, bft.ErrInvalidMessage},
		{"other round", func(c *bft.Certificate) { c.Round = 3 }, bft.ErrBadSignature},
		{"other height", func(c *bft.Certificate) { c.Height = 6 }, bft.ErrBadSignature},
		{"other block", func(c *bft.Certificate) { c.BlockHash = valueOf("B").Hash }, bft.ErrBadSignature},
		{"flipped signature bit", func(c *bft.Certificate) {
			c.Signatures[1] = signedPrecommit(5, 2, a, "v1")
			c.Signatures[1].Signature[0] ^= 1
		}, bft.ErrBadSignature},
		{"nil block", func(c *bft.Certificate) { c.BlockHash = bft.Hash{} }, bft.ErrInvalidMessage},
		{"too many", func(c *bft.Certificate) { c.Signatures = append(c.Signatures, c.Signatures...) }, bft.ErrInvalidMessage},
	}
	for _, tt := range tests {
		c := good()
		tt.mutate(&c)
		if err := c.Verify("c", vs); !errors.Is(err, tt.want) {
			t.Errorf("%s: Verify = %v; want %v", tt.name, err, tt.want)
		}
		if err := c.Verify("other-chain", vs); err == nil {
			t.Errorf("%s: verifies on another chain", tt.name)
		}
	}
	// Stake, not head count: v0 alone holds more than 2/3.
	heavy := testVals(t, 10, 1, 1, 1)
	c = bft.Certificate{Height: 5, Round: 2, BlockHash: a, Signatures: []bft.CommitSig{signedPrecommit(5, 2, a, "v0")}}
	if err := c.Verify("c", heavy); err != nil {
		t.Errorf("heavy validator alone: %v", err)
	}
	c = bft.Certificate{Height: 5, Round: 2, BlockHash: a, Signatures: []bft.CommitSig{signedPrecommit(5, 2, a, "v1"), signedPrecommit(5, 2, a, "v2"), signedPrecommit(5, 2, a, "v3")}}
	if err := c.Verify("c", heavy); !errors.Is(err, bft.ErrInsufficientPower) {
		t.Errorf("three light validators: %v; want ErrInsufficientPower", err)
	}
}

func signedVote(typ bft.VoteType, h uint64, r int32, hash bft.Hash, who string) *bft.Vote {
	v := &bft.Vote{Type: typ, Height: h, Round: r, BlockHash: hash, Validator: who}
	v.Signature = ed25519.Sign(testKey(who), bft.VoteSignBytes("c", v))
	return v
}

func TestEvidenceVerify(t *testing.T) {
	vs := testVals(t, 1, 1, 1, 1)
	a, b := valueOf("A").Hash, valueOf("B").Hash
	va, vb := signedVote(bft.Prevote, 3, 1, a, "v1"), signedVote(bft.Prevote, 3, 1, b, "v1")
	// Canonical order, as the machine builds it.
	if string(bft.VoteSignBytes("c", va)) > string(bft.VoteSignBytes("c", vb)) {
		va, vb = vb, va
	}
	good := bft.Evidence{VoteA: va, VoteB: vb}
	if err := good.Verify("c", vs); err != nil {
		t.Fatalf("valid evidence: %v", err)
	}
	if good.Offender() != "v1" || good.Height() != 3 {
		t.Errorf("Offender, Height = %s, %d", good.Offender(), good.Height())
	}
	bad := map[string]bft.Evidence{
		"reversed":      {VoteA: vb, VoteB: va},
		"same vote":     {VoteA: va, VoteB: va},
		"other round":   {VoteA: va, VoteB: signedVote(bft.Prevote, 3, 2, b, "v1")},
		"other type":    {VoteA: va, VoteB: signedVote(bft.Precommit, 3, 1, b, "v1")},
		"other signer":  {VoteA: va, VoteB: signedVote(bft.Prevote, 3, 1, b, "v2")},
		"unknown":       {VoteA: signedVote(bft.Prevote, 3, 1, a, "v7"), VoteB: signedVote(bft.Prevote, 3, 1, b, "v7")},
		"one vote":      {VoteA: va},
		"mixed":         {VoteA: va, VoteB: vb, ProposalA: &bft.Proposal{}},
		"empty":         {},
		"forged second": {VoteA: va, VoteB: &bft.Vote{Type: vb.Type, Height: 3, Round: 1, BlockHash: vb.BlockHash, Validator: "v1", Signature: va.Signature}},
	}
	for name, e := range bad {
		if err := e.Verify("c", vs); !errors.Is(err, bft.ErrInvalidEvidence) {
			t.Errorf("%s: Verify = %v; want ErrInvalidEvidence", name, err)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := bft.New(bft.Config{}); !errors.Is(err, bft.ErrInvalidConfig) {
		t.Errorf("no App: %v", err)
	}
	if _, err := bft.New(bft.Config{App: fuzzApp{}, ID: "v0"}); !errors.Is(err, bft.ErrInvalidConfig) {
		t.Errorf("ID without Signer: %v", err)
	}
	m, err := bft.New(bft.Config{App: fuzzApp{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Step(bft.Message{Vote: signedVote(bft.Prevote, 1, 0, bft.Hash{}, "v0")}); !errors.Is(err, bft.ErrNotStarted) {
		t.Errorf("Step before StartHeight: %v", err)
	}
	vs := testVals(t, 1, 1, 1, 1)
	if err := m.StartHeight(2, vs, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.StartHeight(2, vs, nil); err == nil {
		t.Errorf("StartHeight of the same height succeeded")
	}
	// A follower (no ID) never signs, but decides.
	for _, who := range []string{"v0", "v1", "v3"} {
		if err := m.Step(bft.Message{Vote: signedVote(bft.Precommit, 2, 0, valueOf("A").Hash, who)}); err != nil {
			t.Fatal(err)
		}
	}
	p := &bft.Proposal{Height: 2, Round: 0, POLRound: -1, Value: valueOf("A"), Proposer: vs.Proposer(2, 0)}
	if err := m.Step(bft.Message{Proposal: p}); err != nil {
		t.Fatal(err)
	}
	rd := m.Ready()
	if len(rd.Messages) != 0 || rd.Commit == nil || rd.Commit.Value.Hash != valueOf("A").Hash {
		t.Errorf("follower: messages %d, commit %+v", len(rd.Messages), rd.Commit)
	}
	if err := m.Step(bft.Message{Vote: signedVote(bft.Prevote, 2, 0, bft.Hash{}, "v9")}); !errors.Is(err, bft.ErrUnknownValidator) {
		t.Errorf("unknown validator: %v", err)
	}
}

func TestRestoreRejectsForeignMessages(t *testing.T) {
	vs := testVals(t, 1, 1, 1, 1)
	m, err := bft.New(bft.Config{App: fuzzApp{}, ID: "v2", Signer: edSigner(testKey("v2"))})
	if err != nil {
		t.Fatal(err)
	}
	other := bft.Message{Vote: signedVote(bft.Prevote, 1, 0, bft.Hash{}, "v1")}
	if err := m.StartHeight(1, vs, []bft.Message{other}); !errors.Is(err, bft.ErrInvalidMessage) {
		t.Errorf("restore with another validator's vote: %v", err)
	}
	wrongHeight := bft.Message{Vote: signedVote(bft.Prevote, 2, 0, bft.Hash{}, "v2")}
	if err := m.StartHeight(1, vs, []bft.Message{wrongHeight}); !errors.Is(err, bft.ErrInvalidMessage) {
		t.Errorf("restore with a vote of another height: %v", err)
	}
}

func TestVerifyMessage(t *testing.T) {
	vs := testVals(t, 1, 1, 1, 1)
	v := signedVote(bft.Prevote, 1, 0, valueOf("A").Hash, "v1")
	if err := bft.VerifyMessage("c", vs, bft.Message{Vote: v}); err != nil {
		t.Fatal(err)
	}
	forged := *v
	forged.Round = 1
	if err := bft.VerifyMessage("c", vs, bft.Message{Vote: &forged}); !errors.Is(err, bft.ErrBadSignature) {
		t.Errorf("changed round: %v", err)
	}
	if err := bft.VerifyMessage("other", vs, bft.Message{Vote: v}); !errors.Is(err, bft.ErrBadSignature) {
		t.Errorf("other chain: %v", err)
	}
	if err := bft.VerifyMessage("c", vs, bft.Message{Vote: v, Proposal: &bft.Proposal{}}); !errors.Is(err, bft.ErrInvalidMessage) {
		t.Errorf("both set: %v", err)
	}
	p := &bft.Proposal{Height: 1, Round: 0, POLRound: 0, Value: valueOf("A"), Proposer: "v1"}
	if err := bft.VerifyMessage("c", vs, bft.Message{Proposal: p}); !errors.Is(err, bft.ErrInvalidMessage) {
		t.Errorf("POL round not below round: %v", err)
	}
}
