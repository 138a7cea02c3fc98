// Package bench is the hardware challenge a validator sends a provider: a
// matrix product derived from a fresh seed, sized for the hardware class the
// provider claims, which must come back correct (checked with Freivalds'
// O(n²) test, not recomputed) and within the class's time limit. The
// validator signs the outcome as an Attestation (protocol.KindAttestation)
// that the market shows in offers and the chain can record.
//
// # Usage
//
// Providers call Serve on their host; validators make a Verifier and call
// Challenge(ctx, provider, class). Verify is the pure core both rely on:
// tests drive it with explicit elapsed times.
package bench

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/examples/matmul/mat"
	"github.com/gpunode/gpunode/protocol"
)

// ProtocolName is the stream protocol's name under
// protocol.StreamProtocol(network, ProtocolName).
const ProtocolName = "challenge"

// Sentinel errors.
var (
	ErrUnknownClass = errors.New("bench: unknown hardware class")
	ErrMalformed    = errors.New("bench: malformed challenge or answer")
	ErrWrongAnswer  = errors.New("bench: wrong answer")
	ErrTooSlow      = errors.New("bench: answer too slow")
)

// Class is a hardware class a provider can claim: the challenge size and the
// time the answer must arrive within (network included).
type Class struct {
	Name    string        `json:"name"`
	N       int           `json:"n"`
	MaxTime time.Duration `json:"maxTime"`
}

// DefaultClasses, from any CPU to a data-centre GPU. The GPU class needs
// about 17 GFLOP and a 16 MiB answer in two seconds, beyond any CPU running
// the native kernel.
var DefaultClasses = []Class{
	{Name: "cpu-basic", N: 256, MaxTime: 5 * time.Second},
	{Name: "cpu-fast", N: 512, MaxTime: 2 * time.Second},
	{Name: "gpu", N: 2048, MaxTime: 2 * time.Second},
}

// FindClass looks name up in classes.
func FindClass(classes []Class, name string) (Class, error) {
	for _, c := range classes {
		if c.Name == name {
			return c, nil
		}
	}
	return Class{}, fmt.Errorf("%w: %q", ErrUnknownClass, name)
}

// Challenge is what the validator sends.
type Challenge struct {
	Class string `cbor:"1,keyasint"`
	N     int    `cbor:"2,keyasint"`
	Seed  uint64 `cbor:"3,keyasint"`
}

// Validate checks the challenge can be answered.
func (c Challenge) Validate() error {
	if c.N <= 0 || c.N > mat.MaxN || c.Class == "" || len(c.Class) > 64 {
		return fmt.Errorf("%w: class %q n %d", ErrMalformed, c.Class, c.N)
	}
	return nil
}

// Response is the provider's answer: C = A·B as mat.Encode bytes.
type Response struct {
	C []byte `cbor:"1,keyasint"`
}

// Verdicts recorded in attestations.
const (
	VerdictPass  = "pass"
	VerdictWrong = "wrong"
	VerdictSlow  = "slow"
)

// Attestation is the validator's signed statement about one challenge.
type Attestation struct {
	Provider  []byte `cbor:"1,keyasint"` // binary peer ID
	Class     string `cbor:"2,keyasint"`
	N         int    `cbor:"3,keyasint"`
	Seed      uint64 `cbor:"4,keyasint"`
	ElapsedMs int64  `cbor:"5,keyasint"`
	Verdict   string `cbor:"6,keyasint"`
}

// ProviderID is the attested provider.
func (a Attestation) ProviderID() (peer.ID, error) { return peer.IDFromBytes(a.Provider) }

// Verify is the pure check of an answer: resp must be the product for ch
// (tested with 20 Freivalds rounds from checkSeed, which the provider must
// not know in advance) and elapsed must be within class.MaxTime. The wrong
// answer is reported before slowness.
func Verify(ch Challenge, class Class, resp Response, elapsed time.Duration, checkSeed uint64) error {
	if ch.Class != class.Name || ch.N != class.N {
		return fmt.Errorf("%w: challenge %q/%d for class %q/%d", ErrMalformed, ch.Class, ch.N, class.Name, class.N)
	}
	c, err := mat.Decode(resp.C, ch.N)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrWrongAnswer, err)
	}
	a, b, err := mat.Generate(ch.Seed, ch.N)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !mat.Freivalds(a, b, c, ch.N, checkSeed, 20) {
		return ErrWrongAnswer
	}
	if elapsed > class.MaxTime {
		return fmt.Errorf("%w: %s > %s for class %s", ErrTooSlow, elapsed.Round(time.Millisecond), class.MaxTime, class.Name)
	}
	return nil
}

// verdict maps Verify's error to an attestation verdict.
func verdict(err error) string {
	switch {
	case err == nil:
		return VerdictPass
	case errors.Is(err, ErrTooSlow):
		return VerdictSlow
	default:
		return VerdictWrong
	}
}

// Solve computes the answer with the native kernel.
func Solve(ch Challenge) (Response, error) {
	if err := ch.Validate(); err != nil {
		return Response{}, err
	}
	a, b, err := mat.Generate(ch.Seed, ch.N)
	if err != nil {
		return Response{}, err
	}
	return Response{C: mat.Encode(mat.Multiply(a, b, ch.N))}, nil
}

// OpenAttestation authenticates a sealed attestation for chainID and returns
// it with the validator that signed it.
func OpenAttestation(data []byte, chainID string) (Attestation, peer.ID, error) {
	env, err := protocol.Open(data, chainID)
	if err != nil {
		return Attestation{}, "", err
	}
	if env.Kind != protocol.KindAttestation {
		return Attestation{}, "", fmt.Errorf("%w: envelope kind %q", ErrMalformed, env.Kind)
	}
	var att Attestation
	if err := env.Decode(&att); err != nil {
		return Attestation{}, "", err
	}
	author, err := env.AuthorID()
	if err != nil {
		return Attestation{}, "", err
	}
	return att, author, nil
}
