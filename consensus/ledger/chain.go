package ledger

import (
	"errors"
	"fmt"
	"sync"
)

// Chain follows one chain for the consensus glue: it holds the latest
// committed state and remembers the blocks it proposed or validated at the
// next height with their resulting states, so a block is executed once
// whether this node proposed it, validated it, or only learns it at commit
// (a follower or block sync). It maps directly onto consensus/bft's
// Application (ProposeValue -> Propose, ValidateValue -> Validate, commit ->
// Commit, validator sets -> ValidatorSet). Safe for concurrent use.
type Chain struct {
	l *Ledger

	mu      sync.Mutex // guards st and pending
	st      *State
	pending map[[32]byte]applied // blocks at st.Height()+1 that applied cleanly
}

type applied struct {
	st     *State
	events []Event
}

// ErrUnknownBlock reports a block hash that does not match the block's
// contents, or a block for the wrong height.
var ErrUnknownBlock = errors.New("ledger: block does not match its hash or height")

// NewChain starts following from st (the genesis state or a restored one).
func NewChain(l *Ledger, st *State) *Chain {
	return &Chain{l: l, st: st, pending: map[[32]byte]applied{}}
}

// State is the latest committed state.
func (c *Chain) State() *State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// ValidatorSet is ValidatorSet on the latest committed state.
func (c *Chain) ValidatorSet(height uint64) ([]Validator, error) {
	return ValidatorSet(c.State(), height)
}

// Propose builds this node's block for the next height (see
// Ledger.Propose) and returns its hash and encoding, the value consensus
// proposes.
func (c *Chain) Propose(hdr Header, txs [][]byte, evs []Evidence) (hash [32]byte, data []byte, skipped []SkippedTx, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	blk, ns, events, skipped, err := c.l.Propose(c.st, hdr, txs, evs)
	if err != nil {
		return hash, nil, nil, err
	}
	if data, err = blk.Encode(); err != nil {
		return hash, nil, nil, err
	}
	hash = blk.Hash()
	c.remember(hash, applied{ns, events})
	return hash, data, skipped, nil
}

// Validate checks a proposed value for height: data decodes to a block
// whose hash is hash, for the next height, that Apply accepts. The result
// is kept for Commit.
func (c *Chain) Validate(height uint64, hash [32]byte, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.execute(height, hash, data)
	return err
}

func (c *Chain) execute(height uint64, hash [32]byte, data []byte) (applied, error) {
	if height != c.st.height+1 {
		return applied{}, fmt.Errorf("%w: height %d, next is %d", ErrUnknownBlock, height, c.st.height+1)
	}
	if a, ok := c.pending[hash]; ok {
		return a, nil
	}
	blk, err := DecodeBlock(data)
	if err != nil {
		return applied{}, err
	}
	if blk.Hash() != hash {
		return applied{}, fmt.Errorf("%w: contents hash to %x, value says %x", ErrUnknownBlock, hashPrefix(blk.Hash()), hash[:4])
	}
	ns, events, err := c.l.Apply(c.st, blk)
	if err != nil {
		return applied{}, err
	}
	a := applied{ns, events}
	c.remember(hash, a)
	return a, nil
}

// Commit makes the block decided at height the latest state and returns it
// with the block's events. The caller has verified the commit certificate.
// The block is executed now if this node had not validated it.
func (c *Chain) Commit(height uint64, hash [32]byte, data []byte) (*State, []Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, err := c.execute(height, hash, data)
	if err != nil {
		return nil, nil, err
	}
	c.st = a.st
	clear(c.pending)
	return a.st, a.events, nil
}

func hashPrefix(h [32]byte) []byte { return h[:4] }

// maxPending bounds the executed-but-undecided blocks kept per height (one
// proposal per round is valid; many rounds are rare).
const maxPending = 64

func (c *Chain) remember(hash [32]byte, a applied) {
	if len(c.pending) >= maxPending {
		clear(c.pending)
	}
	c.pending[hash] = a
}
