package bft_test

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gpunode/gpunode/consensus/bft"
)

// fuzzApp proposes "A" and accepts A, B, C with matching hashes.
type fuzzApp struct{}

func (fuzzApp) ProposeValue(h uint64, r int32) (bft.Value, error) { return valueOf("A"), nil }
func (fuzzApp) ValidateValue(h uint64, v bft.Value) error {
	for _, n := range []string{"A", "B", "C"} {
		if valueOf(n).Hash == v.Hash && string(v.Data) == n {
			return nil
		}
	}
	return errors.New("unknown value")
}

// FuzzStep drives a machine with arbitrary sequences of signed proposals,
// votes, timeouts, restarts and height changes, and checks invariants after
// every input: no panic, no two different own messages for one slot (also
// across restarts), rounds and steps only move forward, the lock never
// exceeds the valid round, own messages verify, and every commit carries a
// certificate that verifies, at most one per height.
func FuzzStep(f *testing.F) {
	f.Add([]byte{0, 1, 0, 1, 1, 0, 0, 1, 1, 2, 0, 1, 1, 3, 0, 1, 2, 0, 0, 1, 2, 3, 0, 1})
	f.Add([]byte{3, 0, 0, 0, 3, 0, 0, 1, 3, 0, 0, 2, 0, 3, 1, 2, 4, 0, 0, 0, 1, 2, 1, 2})
	f.Add([]byte{1, 0, 9, 0, 1, 1, 9, 0, 2, 3, 200, 1, 6, 0, 0, 1, 5, 0, 0, 0, 0, 1, 0, 17})
	f.Add([]byte{0, 1, 0, 2, 0, 1, 0, 3, 1, 0, 0, 2, 1, 0, 0, 3, 2, 2, 0, 2, 2, 2, 0, 3, 4, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		runFuzz(t, data)
	})
}

func runFuzz(t *testing.T, data []byte) {
	const chain = "fuzz"
	names := []string{"v0", "v1", "v2", "v3"}
	var vals []bft.Validator
	for i, n := range names {
		vals = append(vals, bft.Validator{ID: n, PubKey: testKey(n).Public().(ed25519.PublicKey), Power: int64(1 + i%2)})
	}
	vs, err := bft.NewValidatorSet(vals)
	if err != nil {
		t.Fatal(err)
	}
	const me = "v2"
	newMachine := func() *bft.Machine {
		m, err := bft.New(bft.Config{ChainID: chain, ID: me, Signer: edSigner(testKey(me)), App: fuzzApp{}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := newMachine()
	if err := m.StartHeight(1, vs, nil); err != nil {
		t.Fatal(err)
	}
	signed := map[string]string{} // slot -> signing bytes
	wal := map[uint64][]bft.Message{}
	committed := map[uint64]bft.Hash{}
	prev := m.State()
	check := func(op string) {
		rd := m.Ready()
		for _, msg := range rd.Messages {
			if err := bft.VerifyMessage(chain, vs, msg); err != nil {
				t.Fatalf("%s: own message does not verify: %v", op, err)
			}
			var slot, sb string
			if msg.Proposal != nil {
				slot = fmt.Sprintf("p/%d/%d", msg.Height(), msg.Round())
				sb = string(bft.ProposalSignBytes(chain, msg.Proposal))
			} else {
				slot = fmt.Sprintf("%d/%d/%d", msg.Vote.Type, msg.Height(), msg.Round())
				sb = string(bft.VoteSignBytes(chain, msg.Vote))
			}
			if old, ok := signed[slot]; ok && old != sb {
				t.Fatalf("%s: double sign at %s: %s", op, slot, msg)
			}
			signed[slot] = sb
			wal[msg.Height()] = append(wal[msg.Height()], msg)
		}
		for _, msg := range rd.Persist {
			if msg.Proposal == nil || msg.Proposal.Proposer == me {
				t.Fatalf("%s: Persist holds %s", op, msg)
			}
			wal[msg.Height()] = append(wal[msg.Height()], msg)
		}
		for _, e := range rd.Evidence {
			if e.Offender() == me {
				t.Fatalf("%s: evidence against self", op)
			}
			if err := e.Verify(chain, vs); err != nil {
				t.Fatalf("%s: evidence does not verify: %v", op, err)
			}
		}
		if c := rd.Commit; c != nil {
			if _, ok := committed[c.Height]; ok {
				t.Fatalf("%s: second commit at height %d", op, c.Height)
			}
			if err := c.Certificate.Verify(chain, vs); err != nil {
				t.Fatalf("%s: certificate: %v", op, err)
			}
			committed[c.Height] = c.Value.Hash
		}
		for _, to := range rd.Timeouts {
			if to.Duration <= 0 {
				t.Fatalf("%s: timeout %+v", op, to)
			}
		}
		st := m.State()
		if st.Height == prev.Height && (st.Round < prev.Round || st.Round == prev.Round && st.Step < prev.Step) {
			t.Fatalf("%s: went back from %v to %v", op, prev, st)
		}
		if st.LockedRound > st.ValidRound || st.LockedRound > st.Round || st.ValidRound > st.Round {
			t.Fatalf("%s: bad lock/valid rounds: %v", op, st)
		}
		prev = st
	}
	check("start")
	sign := func(author string, msg bft.Message) bft.Message {
		if msg.Proposal != nil {
			msg.Proposal.Signature = ed25519.Sign(testKey(author), bft.ProposalSignBytes(chain, msg.Proposal))
		} else {
			msg.Vote.Signature = ed25519.Sign(testKey(author), bft.VoteSignBytes(chain, msg.Vote))
		}
		return msg
	}
	for i := 0; i+4 <= len(data) && i < 4*200; i += 4 {
		kind, who, round, val := data[i]%8, names[int(data[i+1])%len(names)], int32(data[i+2]%12), data[i+3]
		h := m.State().Height
		if val&0x80 != 0 {
			h++ // next-height messages get buffered
		}
		value := bft.Value{}
		if v := int(val & 3); v > 0 {
			value = valueOf(string(rune('A' + v - 1)))
		}
		op := fmt.Sprintf("op %d kind %d by %s r=%d val=%d", i/4, kind, who, round, val)
		switch kind {
		case 0:
			if value.Hash.IsZero() {
				value = valueOf("A")
			}
			pol := int32(val>>2&7) - 1
			if pol >= round {
				pol = -1
			}
			p := &bft.Proposal{Height: h, Round: round, POLRound: pol, Value: value, Proposer: vs.Proposer(h, round)}
			if val&0x40 != 0 {
				p.Proposer = who // possibly the wrong proposer
			}
			if p.Proposer == me {
				break // only the machine signs as this node
			}
			_ = m.Step(sign(p.Proposer, bft.Message{Proposal: p}))
		case 1, 2:
			if who == me {
				break
			}
			v := &bft.Vote{Type: bft.VoteType(kind), Height: h, Round: round, BlockHash: value.Hash, Validator: who}
			_ = m.Step(sign(who, bft.Message{Vote: v}))
		case 3, 4:
			st := m.State()
			m.Timeout(bft.Timeout{Height: st.Height, Round: st.Round - int32(val&1), Step: bft.Step(1 + val%3)})
		case 5:
			// Restart from the write-ahead record.
			st := m.State()
			m = newMachine()
			if err := m.StartHeight(st.Height, vs, wal[st.Height]); err != nil {
				t.Fatalf("%s: restart: %v", op, err)
			}
			prev = m.State()
			if prev.Height == st.Height && (prev.Round < st.Round && len(wal[st.Height]) > 0 && maxRound(wal[st.Height]) == st.Round) {
				t.Fatalf("%s: restart went back from %v to %v", op, st, prev)
			}
		case 6:
			if m.State().Decided {
				if err := m.StartHeight(h+1, vs, nil); err != nil {
					t.Fatalf("%s: %v", op, err)
				}
				prev = m.State()
			}
		case 7:
			// Structurally bad input: rejected, no effect.
			before := m.State()
			if err := m.Step(bft.Message{Vote: &bft.Vote{Type: 9, Height: h, Round: round, Validator: who}}); !errors.Is(err, bft.ErrInvalidMessage) {
				t.Fatalf("%s: bad vote type: err %v", op, err)
			}
			if err := m.Step(bft.Message{}); !errors.Is(err, bft.ErrInvalidMessage) {
				t.Fatalf("%s: empty message: err %v", op, err)
			}
			if m.State() != before || m.HasReady() {
				t.Fatalf("%s: rejected input changed the machine", op)
			}
		}
		check(op)
	}
}

func maxRound(msgs []bft.Message) int32 {
	var r int32
	for _, m := range msgs {
		if m.Author() == "v2" {
			r = max(r, m.Round())
		}
	}
	return r
}

var e2e = flag.Bool("e2e", false, "long runs: TestStepSequencesE2E runs 5,000 sequences instead of 25 (also GPUNODE_E2E=1)")

// TestStepSequencesE2E runs the FuzzStep invariants over seeded random input
// sequences, many more under -e2e.
func TestStepSequencesE2E(t *testing.T) {
	n := 25
	if *e2e || os.Getenv("GPUNODE_E2E") == "1" {
		n = 5000
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		data := make([]byte, 4*(1+rng.IntN(120)))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		// Bias towards consensus-relevant inputs: small rounds, few values.
		for j := 0; j+4 <= len(data); j += 4 {
			data[j+2] %= 4
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { runFuzz(t, data) })
		if t.Failed() {
			t.Fatalf("sequence %d failed: %x", i, data)
		}
	}
}
