package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pprotocol "github.com/libp2p/go-libp2p/core/protocol"

	"github.com/gpunode/gpunode/protocol"
)

// maxChallenge caps an encoded challenge.
const maxChallenge = 256

// writeFrame writes a uvarint length and payload.
func writeFrame(w io.Writer, payload []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(payload)))
	if _, err := w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads one frame of at most limit bytes.
func readFrame(r *bufio.Reader, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("%w: frame length: %v", ErrMalformed, err)
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%w: frame of %d bytes > %d", ErrMalformed, n, limit)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("%w: frame: %v", ErrMalformed, err)
	}
	return buf, nil
}

// DecodeChallenge strictly decodes and validates a challenge message.
func DecodeChallenge(b []byte) (Challenge, error) {
	if len(b) > maxChallenge {
		return Challenge{}, fmt.Errorf("%w: challenge of %d bytes", ErrMalformed, len(b))
	}
	var ch Challenge
	if err := protocol.Unmarshal(b, &ch); err != nil {
		return Challenge{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return ch, ch.Validate()
}

// Solver answers a challenge; Solve (the native kernel) by default. A
// provider with a GPU plugs in its own.
type Solver func(ctx context.Context, ch Challenge) (Response, error)

// ServerOption configures Serve.
type ServerOption func(*server)

// WithSolver replaces the native kernel.
func WithSolver(s Solver) ServerOption { return func(sv *server) { sv.solve = s } }

// WithMaxN refuses challenges larger than n (default: the largest
// DefaultClasses size), so a validator cannot make a provider compute an
// arbitrarily large product.
func WithMaxN(n int) ServerOption { return func(sv *server) { sv.maxN = n } }

// WithServerLogger sets the logger.
func WithServerLogger(l *slog.Logger) ServerOption { return func(sv *server) { sv.log = l } }

type server struct {
	solve Solver
	maxN  int
	log   *slog.Logger
	sem   chan struct{} // one challenge at a time: they measure the whole machine
}

// Serve answers challenges on proto (protocol.StreamProtocol(net,
// ProtocolName)) until h closes or the handler is removed.
func Serve(h host.Host, proto libp2pprotocol.ID, opts ...ServerOption) {
	sv := &server{solve: func(_ context.Context, ch Challenge) (Response, error) { return Solve(ch) }, log: slog.Default(), sem: make(chan struct{}, 1)}
	for _, c := range DefaultClasses {
		sv.maxN = max(sv.maxN, c.N)
	}
	for _, o := range opts {
		o(sv)
	}
	sv.log = sv.log.With("subsystem", "bench")
	h.SetStreamHandler(proto, sv.handle)
}

func (sv *server) handle(s network.Stream) {
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := readFrame(bufio.NewReader(s), maxChallenge)
	if err != nil {
		sv.log.Debug("bad challenge", "peer", s.Conn().RemotePeer(), "err", err)
		_ = s.Reset()
		return
	}
	ch, err := DecodeChallenge(b)
	if err == nil && ch.N > sv.maxN {
		err = fmt.Errorf("%w: n %d above this provider's limit %d", ErrMalformed, ch.N, sv.maxN)
	}
	if err != nil {
		sv.log.Debug("bad challenge", "peer", s.Conn().RemotePeer(), "err", err)
		_ = s.Reset()
		return
	}
	select {
	case sv.sem <- struct{}{}:
		defer func() { <-sv.sem }()
	default:
		_ = s.Reset() // busy with another challenge
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := sv.solve(ctx, ch)
	if err != nil {
		sv.log.Warn("challenge solver failed", "err", err)
		_ = s.Reset()
		return
	}
	out, err := protocol.Marshal(resp)
	if err != nil {
		_ = s.Reset()
		return
	}
	_ = s.SetWriteDeadline(time.Now().Add(time.Minute))
	if err := writeFrame(s, out); err != nil {
		_ = s.Reset()
	}
}

// Clock is the verifier's time source.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// VerifierOption configures NewVerifier.
type VerifierOption func(*Verifier)

// WithClock sets the clock used for timing and attestation timestamps.
func WithClock(c Clock) VerifierOption { return func(v *Verifier) { v.clock = c } }

// WithRand sets the source of challenge and check seeds (default: seeded
// from crypto/rand).
func WithRand(r *mrand.Rand) VerifierOption { return func(v *Verifier) { v.rnd = r } }

// WithClasses replaces DefaultClasses.
func WithClasses(cs []Class) VerifierOption { return func(v *Verifier) { v.classes = cs } }

// Verifier sends challenges and signs attestations: the validator's side.
type Verifier struct {
	h       host.Host
	proto   libp2pprotocol.ID
	key     crypto.PrivKey
	chainID string
	clock   Clock
	classes []Class

	mu  sync.Mutex // guards rnd
	rnd *mrand.Rand
}

// NewVerifier makes a verifier that signs with key (Ed25519) for chainID.
func NewVerifier(h host.Host, proto libp2pprotocol.ID, key crypto.PrivKey, chainID string, opts ...VerifierOption) *Verifier {
	v := &Verifier{h: h, proto: proto, key: key, chainID: chainID, clock: systemClock{}, classes: DefaultClasses}
	for _, o := range opts {
		o(v)
	}
	if v.rnd == nil {
		var seed [32]byte
		_, _ = rand.Read(seed[:])
		v.rnd = mrand.New(mrand.NewChaCha8(seed))
	}
	return v
}

// Result is one challenge's outcome.
type Result struct {
	Attestation Attestation
	// Sealed is the signed envelope (protocol.Seal) to gossip or submit.
	Sealed []byte
	// Err is why the provider failed (nil on pass): ErrWrongAnswer or
	// ErrTooSlow.
	Err error
}

// Challenge runs one challenge of class against provider p. A provider that
// answers wrongly or too slowly still gets a signed attestation (with that
// verdict); a provider that does not answer at all, or a transport failure,
// is an error and nothing is signed.
func (v *Verifier) Challenge(ctx context.Context, p peer.ID, className string) (*Result, error) {
	class, err := FindClass(v.classes, className)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	ch := Challenge{Class: class.Name, N: class.N, Seed: v.rnd.Uint64()}
	checkSeed := v.rnd.Uint64()
	v.mu.Unlock()
	req, err := protocol.Marshal(ch)
	if err != nil {
		return nil, err
	}
	s, err := v.h.NewStream(ctx, p, v.proto)
	if err != nil {
		return nil, fmt.Errorf("bench: open stream to %s: %w", p, err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()

	start := v.clock.Now()
	if err := writeFrame(s, req); err != nil {
		return nil, fmt.Errorf("bench: send challenge: %w", err)
	}
	_ = s.CloseWrite()
	raw, err := readFrame(bufio.NewReader(s), 4*class.N*class.N+64)
	elapsed := v.clock.Now().Sub(start)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("bench: no answer from %s: %w", p, ctx.Err())
		}
		return nil, fmt.Errorf("bench: no answer from %s: %w", p, err)
	}
	var resp Response
	verr := protocol.Unmarshal(raw, &resp)
	if verr != nil {
		verr = fmt.Errorf("%w: %v", ErrWrongAnswer, verr)
	} else {
		verr = Verify(ch, class, resp, elapsed, checkSeed)
	}
	att := Attestation{Provider: []byte(p), Class: class.Name, N: class.N, Seed: ch.Seed, ElapsedMs: elapsed.Milliseconds(), Verdict: verdict(verr)}
	sealed, _, err := protocol.Seal(v.key, v.chainID, protocol.KindAttestation, v.clock.Now(), att)
	if err != nil {
		return nil, fmt.Errorf("bench: sign attestation: %w", err)
	}
	return &Result{Attestation: att, Sealed: sealed, Err: verr}, nil
}
