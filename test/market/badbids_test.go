package market_test

import "testing"

// Acceptance 5 (filled in below).
func (n *net) testBadBids(t *testing.T) {}
