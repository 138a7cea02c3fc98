package consensus

import (
	"bytes"
	"log/slog"
	"os"
	"time"

	"github.com/gpunode/gpunode/consensus/bft"
)

const testChain = "chaintest"

// testLogger logs warnings; CONSENSUS_DEBUG=1 shows everything.
func testLogger() *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("CONSENSUS_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// fastTimeouts keep rounds short on loopback.
var fastTimeouts = bft.TimeoutConfig{
	Propose: 400 * time.Millisecond, ProposeDelta: 200 * time.Millisecond,
	Prevote: 200 * time.Millisecond, PrevoteDelta: 100 * time.Millisecond,
	Precommit: 200 * time.Millisecond, PrecommitDelta: 100 * time.Millisecond,
}

func sameSigned(a, b bft.Message) bool {
	if a.Proposal != nil && b.Proposal != nil {
		return bytes.Equal(bft.ProposalSignBytes(testChain, a.Proposal), bft.ProposalSignBytes(testChain, b.Proposal))
	}
	if a.Vote != nil && b.Vote != nil {
		return bytes.Equal(bft.VoteSignBytes(testChain, a.Vote), bft.VoteSignBytes(testChain, b.Vote))
	}
	return false
}
