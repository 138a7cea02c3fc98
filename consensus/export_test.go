package consensus

import "github.com/gpunode/gpunode/consensus/bft"

// Test hooks for the external test package (which can import node).
var (
	TestLogger   = testLogger
	FastTimeouts = fastTimeouts
	StepOf       = stepOf
	SameSigned   = sameSigned
)

// SetOnSend makes s report every message it publishes; call before Start.
func SetOnSend(s *Service, f func(bft.Message)) { s.onSend = f }

// PendingEvidence is the number of evidence items s holds.
func PendingEvidence(s *Service) int {
	n := 0
	s.do(func() { n = len(s.eng.evpool) })
	return n
}
