package market

import (
	"errors"
	"reflect"
	"testing"

	"github.com/gpunode/gpunode/protocol"
)

func TestRoundTrip(t *testing.T) {
	p := key(t, 1)
	r := key(t, 2)
	spec := testSpec()
	spec.Inputs = make([]protocol.CID, spec.Segments)
	for i := range spec.Inputs {
		spec.Inputs[i] = protocol.NewCID(protocol.BlockCID([]byte{byte(i)}))
	}
	o := testOffer(p.id, 3)
	o.HardwareClass = protocol.NewCID(protocol.BlockCID([]byte("class")))
	req := testRequest(t, r.id, spec)
	bid := &Bid{Job: req.Job, Provider: p.id, Price: 50, Capacity: 3, Expiry: req.CloseAt + 1, Nonce: 7}
	nb := &NoBid{Job: req.Job, Provider: p.id, Reason: ReasonVRAM, Detail: "24 GiB < 40 GiB"}

	check := func(name string, v any, dec func([]byte) (any, error)) {
		t.Helper()
		b := protocol.MustMarshal(v)
		got, err := dec(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("%s: round trip = %+v, want %+v", name, got, v)
		}
	}
	check("offer", o, func(b []byte) (any, error) { return DecodeOffer(b) })
	check("spec", &spec, func(b []byte) (any, error) { return DecodeJobSpec(b) })
	check("request", req, func(b []byte) (any, error) { return DecodeJobRequest(b) })
	check("bid", bid, func(b []byte) (any, error) { return DecodeBid(b) })
	check("nobid", nb, func(b []byte) (any, error) { return DecodeNoBid(b) })

	// Each kind fits its gossip limit even at the shape limits that matter.
	if lim, _ := protocol.MaxPayload(protocol.KindJob); len(protocol.MustMarshal(req)) > lim {
		t.Fatalf("job request of %d bytes exceeds KindJob limit %d", len(protocol.MustMarshal(req)), lim)
	}
	big := testSpec()
	big.Segments = MaxInputs
	big.Inputs = make([]protocol.CID, MaxInputs)
	for i := range big.Inputs {
		big.Inputs[i] = protocol.NewCID(protocol.BlockCID([]byte{byte(i), byte(i >> 8)}))
	}
	if _, _, err := protocol.Seal(r.priv, testChain, protocol.KindJob, t0, testRequest(t, r.id, big)); err != nil {
		t.Fatalf("job request with %d inputs: %v", MaxInputs, err)
	}
}

func TestOfferCheck(t *testing.T) {
	p := key(t, 1)
	tests := []struct {
		name string
		edit func(o *Offer)
	}{
		{"bad provider", func(o *Offer) { o.Provider = "nobody" }},
		{"zero TTL", func(o *Offer) { o.TTL = 0 }},
		{"TTL too long", func(o *Offer) { o.TTL = uint32(MaxOfferTTL.Seconds()) + 1 }},
		{"no issue time", func(o *Offer) { o.IssuedAt = 0 }},
		{"bad status", func(o *Offer) { o.Status = 9 }},
		{"unsorted GPUs", func(o *Offer) { o.GPUs[0], o.GPUs[1] = o.GPUs[1], o.GPUs[0] }},
		{"empty GPU group", func(o *Offer) { o.GPUs[0].Count = 0 }},
		{"no executors", func(o *Offer) { o.Executors = nil }},
		{"duplicate executors", func(o *Offer) { o.Executors = []string{"wasm", "wasm"} }},
		{"price for unknown executor", func(o *Offer) { o.Prices[0].Executor = "docker" }},
		{"zero price", func(o *Offer) { o.Prices[1].PerSegment = 0 }},
		{"duplicate price", func(o *Offer) { o.Prices[2] = o.Prices[1] }},
		{"too many GPUs", func(o *Offer) {
			o.GPUs = nil
			for i := range MaxOfferGPUs + 1 {
				o.GPUs = append(o.GPUs, GPUGroup{Model: "G", VRAM: uint64(i + 1), Count: 1})
			}
		}},
	}
	if err := testOffer(p.id, 1).Check(); err != nil {
		t.Fatalf("good offer: %v", err)
	}
	for _, tt := range tests {
		o := testOffer(p.id, 1)
		tt.edit(o)
		if err := o.Check(); !errors.Is(err, ErrBadOffer) {
			t.Errorf("%s: Check = %v, want ErrBadOffer", tt.name, err)
		}
		if _, err := DecodeOffer(protocol.MustMarshal(o)); !errors.Is(err, ErrBadOffer) {
			t.Errorf("%s: DecodeOffer = %v, want ErrBadOffer", tt.name, err)
		}
	}
}

func TestSpecCheck(t *testing.T) {
	tests := []struct {
		name string
		edit func(s *JobSpec)
		want error
	}{
		{"program and runtime", func(s *JobSpec) { s.Runtime = "torch" }, ErrBadJob},
		{"neither program nor runtime", func(s *JobSpec) { s.Program = protocol.CID{} }, ErrBadJob},
		{"no segments", func(s *JobSpec) { s.Segments = 0 }, ErrBadJob},
		{"inputs do not match segments", func(s *JobSpec) { s.Inputs = []protocol.CID{s.Program} }, ErrBadJob},
		{"zero max price", func(s *JobSpec) { s.MaxPrice = 0 }, ErrBadJob},
		{"zero deadline", func(s *JobSpec) { s.Deadline = 0 }, ErrBadJob},
		{"no executor", func(s *JobSpec) { s.Require.Executor = "" }, ErrBadJob},
		{"unsorted models", func(s *JobSpec) { s.Require.GPUModels = []string{"b", "a"} }, ErrBadJob},
		{"VRAM for CPU work", func(s *JobSpec) { s.Require.GPUCount = 0 }, ErrBadJob},
		{"escrow overflows", func(s *JobSpec) { s.MaxPrice = 1 << 62 }, ErrBadJob},
		{"bad policy", func(s *JobSpec) { s.Verify = "replicate:0" }, ErrBadPolicy},
		{"non-canonical policy", func(s *JobSpec) { s.Verify = "spotcheck:0.50" }, ErrBadPolicy},
	}
	good := testSpec()
	if err := good.Check(); err != nil {
		t.Fatalf("good spec: %v", err)
	}
	for _, tt := range tests {
		s := testSpec()
		tt.edit(&s)
		if err := s.Check(); !errors.Is(err, tt.want) {
			t.Errorf("%s: Check = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestRequestCheck(t *testing.T) {
	r := key(t, 2)
	req := testRequest(t, r.id, testSpec())
	if err := req.Check(); err != nil {
		t.Fatal(err)
	}
	wrong := *req
	wrong.Spec.MaxPrice++ // the ID no longer names the spec
	if err := wrong.Check(); !errors.Is(err, ErrBadJob) {
		t.Fatalf("request with stale job ID: %v, want ErrBadJob", err)
	}
}

func TestParsePolicy(t *testing.T) {
	good := []struct {
		in   string
		want Policy
	}{
		{"replicate:1", Policy{Kind: Replicate, K: 1}},
		{"replicate:16", Policy{Kind: Replicate, K: 16}},
		{"spotcheck:1", Policy{Kind: SpotCheck, PPM: 1_000_000}},
		{"spotcheck:0.1", Policy{Kind: SpotCheck, PPM: 100_000}},
		{"spotcheck:0.05", Policy{Kind: SpotCheck, PPM: 50_000}},
		{"spotcheck:0.000001", Policy{Kind: SpotCheck, PPM: 1}},
	}
	for _, tt := range good {
		got, err := ParsePolicy(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParsePolicy(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("ParsePolicy(%q).String() = %q", tt.in, got.String())
		}
	}
	bad := []string{"", "replicate", "replicate:0", "replicate:17", "replicate:02", "replicate:-1",
		"spotcheck:0", "spotcheck:0.0", "spotcheck:1.0", "spotcheck:0.10", "spotcheck:.1",
		"spotcheck:0.0000001", "spotcheck:2", "spotcheck:0.1e1", "spotcheck:0.+1", "vote:3"}
	for _, in := range bad {
		if p, err := ParsePolicy(in); !errors.Is(err, ErrBadPolicy) {
			t.Errorf("ParsePolicy(%q) = %+v, %v; want ErrBadPolicy", in, p, err)
		}
	}
}
