package market

import (
	"fmt"
	"strconv"
	"strings"
)

// PolicyKind is how a job's results are verified.
type PolicyKind uint8

// Verification policies.
const (
	// Replicate: every segment runs on K distinct providers whose outputs
	// must agree; a validator re-runs it on disagreement.
	Replicate PolicyKind = 1
	// SpotCheck: validators re-run a fraction PPM/1e6 of the segments,
	// chosen by block-hash randomness.
	SpotCheck PolicyKind = 2
)

// Policy is a parsed verification policy. It has one canonical text form,
// which is what a JobSpec carries, so equal policies give equal job IDs.
type Policy struct {
	Kind PolicyKind
	K    uint32 // Replicate: providers per segment, 1..MaxReplicas
	PPM  uint32 // SpotCheck: fraction re-run, in parts per million, 1..1e6
}

// Replicas is how many providers run each segment.
func (p Policy) Replicas() uint32 {
	if p.Kind == Replicate {
		return p.K
	}
	return 1
}

// String is the canonical form: "replicate:2", "spotcheck:0.05".
func (p Policy) String() string {
	switch p.Kind {
	case Replicate:
		return "replicate:" + strconv.FormatUint(uint64(p.K), 10)
	case SpotCheck:
		if p.PPM == 1_000_000 {
			return "spotcheck:1"
		}
		frac := strings.TrimRight(fmt.Sprintf("%06d", p.PPM), "0")
		return "spotcheck:0." + frac
	}
	return fmt.Sprintf("policy(%d)", p.Kind)
}

// ParsePolicy parses a policy in its canonical form: "replicate:k" with k in
// 1..MaxReplicas, or "spotcheck:p" with p a decimal fraction in (0, 1] of at
// most six decimals, written without redundant zeros ("0.1", "1"). Floats
// are never used, so every node reads the same fraction.
func ParsePolicy(s string) (Policy, error) {
	kind, arg, ok := strings.Cut(s, ":")
	if !ok {
		return Policy{}, fmt.Errorf("%w: %q: want replicate:k or spotcheck:p", ErrBadPolicy, s)
	}
	var p Policy
	switch kind {
	case "replicate":
		k, err := strconv.ParseUint(arg, 10, 32)
		if err != nil || k < 1 || k > MaxReplicas {
			return Policy{}, fmt.Errorf("%w: %q: k must be 1..%d", ErrBadPolicy, s, MaxReplicas)
		}
		p = Policy{Kind: Replicate, K: uint32(k)}
	case "spotcheck":
		ppm, err := parsePPM(arg)
		if err != nil {
			return Policy{}, fmt.Errorf("%w: %q: %v", ErrBadPolicy, s, err)
		}
		p = Policy{Kind: SpotCheck, PPM: ppm}
	default:
		return Policy{}, fmt.Errorf("%w: %q: unknown kind %q", ErrBadPolicy, s, kind)
	}
	if p.String() != s {
		return Policy{}, fmt.Errorf("%w: %q is not canonical (write %q)", ErrBadPolicy, s, p.String())
	}
	return p, nil
}

func parsePPM(s string) (uint32, error) {
	if s == "1" {
		return 1_000_000, nil
	}
	frac, ok := strings.CutPrefix(s, "0.")
	if !ok || frac == "" || len(frac) > 6 {
		return 0, fmt.Errorf("p must be in (0, 1] with at most 6 decimals")
	}
	for _, c := range frac {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("p must be a decimal fraction")
		}
	}
	v, _ := strconv.ParseUint(frac+strings.Repeat("0", 6-len(frac)), 10, 32)
	if v == 0 {
		return 0, fmt.Errorf("p must be above 0")
	}
	return uint32(v), nil
}
