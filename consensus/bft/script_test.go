package bft_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/consensus/bft"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden output of testdata/*.txt scripts")

// scriptCase is one command of a script and its expected output.
type scriptCase struct {
	pos  string
	cmd  string
	want string
}

// parseScript reads the datadriven-style format: a command line, "----",
// expected output lines, and a blank line. Lines starting with # between
// cases are comments.
func parseScript(t *testing.T, path string) (cases []scriptCase, comments map[int][]string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	comments = map[int][]string{}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" {
			continue
		}
		if strings.HasPrefix(l, "#") {
			comments[len(cases)] = append(comments[len(cases)], l)
			continue
		}
		c := scriptCase{pos: fmt.Sprintf("%s:%d", path, i+1), cmd: l}
		i++
		if i >= len(lines) || lines[i] != "----" {
			t.Fatalf("%s: want ---- after command", c.pos)
		}
		var out []string
		for i++; i < len(lines) && lines[i] != ""; i++ {
			out = append(out, lines[i])
		}
		c.want = strings.Join(out, "\n")
		cases = append(cases, c)
	}
	return cases, comments
}

func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cases, comments := parseScript(t, f)
			r := &runner{t: t}
			var out bytes.Buffer
			for i, c := range cases {
				got := strings.TrimRight(r.run(c), "\n")
				if !*rewrite && got != c.want {
					t.Errorf("%s: %s\ngot:\n%s\nwant:\n%s", c.pos, c.cmd, got, c.want)
				}
				for _, l := range comments[i] {
					out.WriteString(l + "\n")
				}
				fmt.Fprintf(&out, "%s\n----\n%s\n\n", c.cmd, got)
			}
			for _, l := range comments[len(cases)] {
				out.WriteString(l + "\n")
			}
			if *rewrite {
				if err := os.WriteFile(f, append(bytes.TrimRight(out.Bytes(), "\n"), '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// testKey derives a deterministic Ed25519 key from a name.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("bft-test-key/" + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

type edSigner ed25519.PrivateKey

func (s edSigner) Sign(msg []byte) ([]byte, error) {
	return ed25519.Sign(ed25519.PrivateKey(s), msg), nil
}

func valueOf(name string) bft.Value {
	return bft.Value{Hash: sha256.Sum256([]byte(name)), Data: []byte(name)}
}

// scriptApp proposes a configured value and rejects values marked invalid.
type scriptApp struct {
	next    string
	invalid map[bft.Hash]bool
	log     *[]string
}

func (a *scriptApp) ProposeValue(h uint64, r int32) (bft.Value, error) {
	if a.next == "" {
		return bft.Value{}, errors.New("no value configured")
	}
	return valueOf(a.next), nil
}

func (a *scriptApp) ValidateValue(h uint64, v bft.Value) error {
	*a.log = append(*a.log, fmt.Sprintf("validate %s", string(v.Data)))
	if sha256.Sum256(v.Data) != v.Hash {
		return errors.New("hash mismatch")
	}
	if a.invalid[v.Hash] {
		return errors.New("invalid")
	}
	return nil
}

type runner struct {
	t     *testing.T
	m     *bft.Machine
	app   *scriptApp
	vals  *bft.ValidatorSet
	chain string
	names map[bft.Hash]string
	log   []string
	sent  []bft.Message // everything this node signed (its WAL)
}

func (r *runner) name(h bft.Hash) string {
	if h.IsZero() {
		return "nil"
	}
	if n, ok := r.names[h]; ok {
		return n
	}
	return h.String()
}

func args(cmd string) (string, map[string]string) {
	f := strings.Fields(cmd)
	a := map[string]string{}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		a[k] = v
	}
	return f[0], a
}

func atoi(t *testing.T, s string, def int) int {
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("bad number %q", s)
	}
	return n
}

func (r *runner) hash(name string) bft.Hash {
	if name == "nil" || name == "" {
		return bft.Hash{}
	}
	v := valueOf(name)
	r.names[v.Hash] = name
	return v.Hash
}

func (r *runner) run(c scriptCase) string {
	t := r.t
	cmd, a := args(c.cmd)
	var out strings.Builder
	var step func() error
	switch cmd {
	case "init":
		// init me=v1 vals=v0:1,v1:1,v2:1,v3:1 [height=1]
		r.chain = "test-chain"
		r.names = map[bft.Hash]string{}
		r.app = &scriptApp{invalid: map[bft.Hash]bool{}, log: &r.log, next: a["next"]}
		r.hash(a["next"])
		r.sent = nil
		var vals []bft.Validator
		for _, s := range strings.Split(a["vals"], ",") {
			id, p, _ := strings.Cut(s, ":")
			vals = append(vals, bft.Validator{ID: id, PubKey: testKey(id).Public().(ed25519.PublicKey), Power: int64(atoi(t, p, 1))})
		}
		vs, err := bft.NewValidatorSet(vals)
		if err != nil {
			t.Fatal(err)
		}
		r.vals = vs
		m, err := bft.New(bft.Config{ChainID: r.chain, ID: a["me"], Signer: edSigner(testKey(a["me"])), App: r.app,
			Timeouts: bft.TimeoutConfig{Propose: 3 * time.Second, ProposeDelta: 500 * time.Millisecond,
				Prevote: time.Second, PrevoteDelta: 500 * time.Millisecond, Precommit: time.Second, PrecommitDelta: 250 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		r.m = m
		h := uint64(atoi(t, a["height"], 1))
		fmt.Fprintf(&out, "proposers h=%d: %s\n", h, strings.Join(vs.ProposerOrder(h), " "))
		step = func() error { return m.StartHeight(h, vs, nil) }
	case "restart":
		// restart: a fresh machine at the current height, restored from the WAL
		h := r.m.State().Height
		m, err := bft.New(bft.Config{ChainID: r.chain, ID: a["me"], Signer: edSigner(testKey(a["me"])), App: r.app,
			Timeouts: bft.TimeoutConfig{Propose: 3 * time.Second, ProposeDelta: 500 * time.Millisecond,
				Prevote: time.Second, PrevoteDelta: 500 * time.Millisecond, Precommit: time.Second, PrecommitDelta: 250 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		r.m = m
		var wal []bft.Message
		for _, s := range r.sent {
			if s.Height() == h {
				wal = append(wal, s)
			}
		}
		step = func() error { return m.StartHeight(h, r.vals, wal) }
	case "start":
		h := uint64(atoi(t, a["height"], 0))
		step = func() error { return r.m.StartHeight(h, r.vals, nil) }
	case "next-value":
		r.app.next = a["v"]
		r.hash(a["v"])
		return "ok"
	case "invalid":
		r.app.invalid[r.hash(a["v"])] = true
		return "ok"
	case "proposal":
		// proposal from=v0 r=0 v=A [pol=-1] [h=1] [data=X]
		p := &bft.Proposal{Height: uint64(atoi(t, a["h"], int(r.m.State().Height))), Round: int32(atoi(t, a["r"], 0)),
			POLRound: int32(atoi(t, a["pol"], -1)), Value: valueOf(a["v"]), Proposer: a["from"]}
		r.hash(a["v"])
		if d, ok := a["data"]; ok {
			p.Value.Data = []byte(d)
		}
		p.Signature = ed25519.Sign(testKey(a["from"]), bft.ProposalSignBytes(r.chain, p))
		step = func() error { return r.m.Step(bft.Message{Proposal: p}) }
	case "prevote", "precommit":
		// prevote from=v0,v2 r=0 v=A [h=1]
		typ := bft.Prevote
		if cmd == "precommit" {
			typ = bft.Precommit
		}
		var msgs []bft.Message
		for _, from := range strings.Split(a["from"], ",") {
			v := &bft.Vote{Type: typ, Height: uint64(atoi(t, a["h"], int(r.m.State().Height))), Round: int32(atoi(t, a["r"], 0)),
				BlockHash: r.hash(a["v"]), Validator: from}
			v.Signature = ed25519.Sign(testKey(from), bft.VoteSignBytes(r.chain, v))
			if err := bft.VerifyMessage(r.chain, r.vals, bft.Message{Vote: v}); err != nil && a["h"] == "" {
				t.Fatalf("%s: %v", c.pos, err)
			}
			msgs = append(msgs, bft.Message{Vote: v})
		}
		step = func() error {
			var errs []error
			for _, m := range msgs {
				if err := r.m.Step(m); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		}
	case "timeout":
		// timeout step=propose r=0
		steps := map[string]bft.Step{"propose": bft.StepPropose, "prevote": bft.StepPrevote, "precommit": bft.StepPrecommit}
		st := r.m.State()
		to := bft.Timeout{Height: uint64(atoi(t, a["h"], int(st.Height))), Round: int32(atoi(t, a["r"], int(st.Round))), Step: steps[a["step"]]}
		step = func() error { r.m.Timeout(to); return nil }
	case "state":
		return r.state()
	default:
		t.Fatalf("%s: unknown command %q", c.pos, cmd)
	}
	if err := step(); err != nil {
		fmt.Fprintf(&out, "step error: %v\n", err)
	}
	r.printReady(&out)
	out.WriteString(r.state())
	return out.String()
}

func (r *runner) state() string {
	s := r.m.State()
	d := ""
	if s.Decided {
		d = " decided"
	}
	return fmt.Sprintf("state: h=%d r=%d %s%s locked=%d/%s valid=%d/%s", s.Height, s.Round, s.Step, d, s.LockedRound, r.name(s.LockedHash), s.ValidRound, r.name(s.ValidHash))
}

func (r *runner) msg(m bft.Message) string {
	if p := m.Proposal; p != nil {
		return fmt.Sprintf("proposal h=%d r=%d pol=%d v=%s", p.Height, p.Round, p.POLRound, r.name(p.Value.Hash))
	}
	v := m.Vote
	return fmt.Sprintf("%s h=%d r=%d v=%s", v.Type, v.Height, v.Round, r.name(v.BlockHash))
}

func (r *runner) printReady(out *strings.Builder) {
	for _, l := range r.log {
		fmt.Fprintln(out, "app:", l)
	}
	r.log = nil
	rd := r.m.Ready()
	for _, m := range rd.Messages {
		if err := bft.VerifyMessage(r.chain, r.vals, m); err != nil {
			r.t.Errorf("own message does not verify: %v", err)
		}
		r.sent = append(r.sent, m)
		fmt.Fprintf(out, "send %s\n", r.msg(m))
	}
	for _, to := range rd.Timeouts {
		fmt.Fprintf(out, "schedule %s h=%d r=%d after %s\n", to.Step, to.Height, to.Round, to.Duration)
	}
	if c := rd.Commit; c != nil {
		var ids []string
		for _, s := range c.Certificate.Signatures {
			ids = append(ids, s.Validator)
		}
		verr := "ok"
		if err := c.Certificate.Verify(r.chain, r.vals); err != nil {
			verr = err.Error()
		}
		fmt.Fprintf(out, "commit h=%d r=%d v=%s cert=[%s] verify=%s\n", c.Height, c.Certificate.Round, r.name(c.Value.Hash), strings.Join(ids, " "), verr)
	}
	for _, m := range rd.Persist {
		r.sent = append(r.sent, m)
		fmt.Fprintf(out, "persist %s\n", r.msg(m))
	}
	for _, e := range rd.Evidence {
		verr := "ok"
		if err := e.Verify(r.chain, r.vals); err != nil {
			verr = err.Error()
		}
		if e.VoteA != nil {
			hs := []string{r.name(e.VoteA.BlockHash), r.name(e.VoteB.BlockHash)}
			slices.Sort(hs)
			fmt.Fprintf(out, "evidence %s h=%d r=%d from=%s values=%s verify=%s\n", e.VoteA.Type, e.VoteA.Height, e.VoteA.Round, e.Offender(), strings.Join(hs, ","), verr)
		} else {
			hs := []string{r.name(e.ProposalA.Value.Hash), r.name(e.ProposalB.Value.Hash)}
			slices.Sort(hs)
			fmt.Fprintf(out, "evidence proposal h=%d r=%d from=%s values=%s verify=%s\n", e.ProposalA.Height, e.ProposalA.Round, e.Offender(), strings.Join(hs, ","), verr)
		}
	}
	for _, e := range rd.Errors {
		fmt.Fprintf(out, "error: %v\n", e)
	}
}
