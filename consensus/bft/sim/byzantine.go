package sim

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/gpunode/gpunode/consensus/bft"
)

// side returns which side of the Byzantine split node i is on: its
// partition group when partitioned, else a fixed half.
func (s *simRun) side(i int) int {
	if s.groups != nil {
		return s.groups[i]
	}
	return i % 2
}

// byzantineSend sends a Byzantine node's own message, equivocating as its
// behaviour says.
func (s *simRun) byzantineSend(n *node, m bft.Message) {
	sc := s.sc
	switch {
	case m.Author() != n.info.ID:
		s.broadcast(n, m) // a proposal it persisted: not its to equivocate on
	case m.Proposal != nil && sc.Behaviour&SplitProposals != 0:
		a := *m.Proposal
		b := a
		b.Value.Data = append(append([]byte{}, a.Value.Data...), " alt"...)
		b.Value.Hash = sha256.Sum256(b.Value.Data)
		b.Signature = s.sign(n, bft.ProposalSignBytes(ChainID, &b))
		s.record(n, bft.Message{Proposal: &b})
		s.split[[2]uint64{a.Height, uint64(a.Round)}] = [2]bft.Value{a.Value, b.Value}
		s.sendSplit(n, bft.Message{Proposal: &a}, bft.Message{Proposal: &b})
	case m.Vote != nil && sc.Behaviour&(SplitProposals|Equivocate) != 0:
		v := m.Vote
		a, b := *v, *v
		if pair, ok := s.split[[2]uint64{v.Height, uint64(v.Round)}]; ok && sc.Behaviour&SplitProposals != 0 {
			// Collude: vote for A towards side 0 and for B towards side 1.
			a.BlockHash, b.BlockHash = pair[0].Hash, pair[1].Hash
		} else if sc.Behaviour&Equivocate != 0 {
			if v.BlockHash.IsZero() {
				b.BlockHash = sha256.Sum256(fmt.Appendf(nil, "fake %d/%d/%s", v.Height, v.Round, v.Validator))
			} else {
				b.BlockHash = bft.Hash{}
			}
		} else {
			s.broadcast(n, m)
			return
		}
		for _, x := range []*bft.Vote{&a, &b} {
			x.Signature = s.sign(n, bft.VoteSignBytes(ChainID, x))
			s.record(n, bft.Message{Vote: x})
		}
		s.sendSplit(n, bft.Message{Vote: &a}, bft.Message{Vote: &b})
	default:
		s.broadcast(n, m)
	}
}

// sendSplit sends a to side 0 and b to side 1, and both to one random
// node so that the equivocation is seen and proven.
func (s *simRun) sendSplit(n *node, a, b bft.Message) {
	both := s.rng.IntN(len(s.nodes))
	for i := range s.nodes {
		if s.side(i) == 0 || i == both {
			s.send(n.info.Index, i, a)
		}
		if s.side(i) == 1 || i == both {
			s.send(n.info.Index, i, b)
		}
	}
}

// signAndSend signs v as n and broadcasts it.
func (s *simRun) signAndSend(n *node, v *bft.Vote) {
	v.Signature = s.sign(n, bft.VoteSignBytes(ChainID, v))
	m := bft.Message{Vote: v}
	s.record(n, m)
	s.broadcast(n, m)
}

// schedule gives the validator set of each height: the whole pool, or
// (with changes) a seeded subset of at least 4 members with powers 1..10.
type schedule struct {
	pool    []bft.Validator
	changes bool
	seed    uint64
	sets    map[uint64]*bft.ValidatorSet
}

func (sc *schedule) at(h uint64) (*bft.ValidatorSet, error) {
	if vs, ok := sc.sets[h]; ok {
		return vs, nil
	}
	vals := sc.pool
	if sc.changes && h > 1 {
		rng := rand.New(rand.NewPCG(sc.seed, h))
		k := min(len(sc.pool), 4+rng.IntN(len(sc.pool)-3))
		vals = nil
		for _, i := range rng.Perm(len(sc.pool))[:k] {
			v := sc.pool[i]
			v.Power = 1 + rng.Int64N(10)
			vals = append(vals, v)
		}
	}
	vs, err := bft.NewValidatorSet(vals)
	if err != nil {
		return nil, err
	}
	sc.sets[h] = vs
	return vs, nil
}

// kvApp is the built-in application: a value is the text
// "h=<height> r=<round> by=<id> prev=<hash>", valid when it names this
// height and extends this node's chain.
type kvApp struct {
	id     string
	sched  *schedule
	height uint64
	last   bft.Hash
}

func (a *kvApp) prefix(h uint64) string { return fmt.Sprintf("h=%d prev=%x ", h, a.last[:8]) }

func (a *kvApp) ProposeValue(h uint64, r int32) (bft.Value, error) {
	data := []byte(fmt.Sprintf("%sr=%d by=%s", a.prefix(h), r, a.id))
	return bft.Value{Hash: sha256.Sum256(data), Data: data}, nil
}

func (a *kvApp) ValidateValue(h uint64, v bft.Value) error {
	if sha256.Sum256(v.Data) != v.Hash {
		return errors.New("kv: hash does not match data")
	}
	if h != a.height+1 || !strings.HasPrefix(string(v.Data), a.prefix(h)) {
		return fmt.Errorf("kv: %q does not extend height %d", v.Data, a.height)
	}
	return nil
}

func (a *kvApp) Commit(h uint64, v bft.Value, _ bft.Certificate) error {
	if err := a.ValidateValue(h, v); err != nil {
		return err
	}
	a.height, a.last = h, v.Hash
	return nil
}

func (a *kvApp) ValidatorSet(h uint64) (*bft.ValidatorSet, error) { return a.sched.at(h) }
