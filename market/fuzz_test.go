package market

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gpunode/gpunode/protocol"
)

// The fuzz targets start from the encodings of the test fixtures; each
// checks that whatever decodes is canonical (re-encodes to the same bytes)
// and passes its shape check, and that every rejection is one of the
// package's sentinels.

func FuzzDecodeOffer(f *testing.F) {
	o := testOffer(key(f, 1).id, 1)
	f.Add(protocol.MustMarshal(o))
	o.HardwareClass = protocol.NewCID(protocol.BlockCID([]byte("c")))
	f.Add(protocol.MustMarshal(o))
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := DecodeOffer(data)
		if err != nil {
			if !errors.Is(err, ErrBadOffer) || o != nil {
				t.Fatalf("DecodeOffer = %v, %v", o, err)
			}
			return
		}
		if again := protocol.MustMarshal(o); !bytes.Equal(again, data) {
			t.Fatalf("accepted %x, re-encodes to %x", data, again)
		}
		if err := o.Check(); err != nil {
			t.Fatalf("accepted offer fails Check: %v", err)
		}
		// Matching never panics on an accepted offer.
		s := testSpec()
		o.Meets(&s.Require)
		Quote(o.Prices, &s.Require, o.GPUs)
	})
}

func FuzzDecodeJobSpec(f *testing.F) {
	s := testSpec()
	f.Add(protocol.MustMarshal(&s))
	s.Program = protocol.CID{}
	s.Runtime = "torch"
	s.Verify = "spotcheck:0.05"
	s.Segments = 2
	s.Inputs = []protocol.CID{protocol.NewCID(protocol.BlockCID([]byte{1})), protocol.NewCID(protocol.BlockCID([]byte{2}))}
	f.Add(protocol.MustMarshal(&s))
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeJobSpec(data)
		if err != nil {
			if !(errors.Is(err, ErrBadJob) || errors.Is(err, ErrBadPolicy)) || s != nil {
				t.Fatalf("DecodeJobSpec = %v, %v", s, err)
			}
			return
		}
		if again := protocol.MustMarshal(s); !bytes.Equal(again, data) {
			t.Fatalf("accepted %x, re-encodes to %x", data, again)
		}
		p, err := s.Policy()
		if err != nil || p.String() != s.Verify {
			t.Fatalf("accepted spec with policy %q: %v", s.Verify, err)
		}
		id, err := s.ID()
		if err != nil || !id.Equals(protocol.DagCBORCID(data)) {
			t.Fatalf("ID = %v, %v; want the CID of the input", id, err)
		}
	})
}

func FuzzDecodeBid(f *testing.F) {
	req := testRequest(f, key(f, 2).id, testSpec())
	f.Add(protocol.MustMarshal(&Bid{Job: req.Job, Provider: key(f, 1).id, Price: 5, Capacity: 2, Expiry: req.CloseAt, Nonce: 1}))
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBid(data)
		if err != nil {
			if !errors.Is(err, ErrBadBid) || b != nil {
				t.Fatalf("DecodeBid = %v, %v", b, err)
			}
			return
		}
		if again := protocol.MustMarshal(b); !bytes.Equal(again, data) {
			t.Fatalf("accepted %x, re-encodes to %x", data, again)
		}
		if err := b.Check(); err != nil {
			t.Fatalf("accepted bid fails Check: %v", err)
		}
	})
}

func FuzzDecodeJobRequest(f *testing.F) {
	f.Add(protocol.MustMarshal(testRequest(f, key(f, 2).id, testSpec())))
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeJobRequest(data)
		if err != nil {
			if !(errors.Is(err, ErrBadJob) || errors.Is(err, ErrBadPolicy)) || r != nil {
				t.Fatalf("DecodeJobRequest = %v, %v", r, err)
			}
			return
		}
		if again := protocol.MustMarshal(r); !bytes.Equal(again, data) {
			t.Fatalf("accepted %x, re-encodes to %x", data, again)
		}
		if err := r.Check(); err != nil {
			t.Fatalf("accepted request fails Check: %v", err)
		}
	})
}

func FuzzDecodeNoBid(f *testing.F) {
	req := testRequest(f, key(f, 2).id, testSpec())
	f.Add(protocol.MustMarshal(&NoBid{Job: req.Job, Provider: key(f, 1).id, Reason: ReasonVRAM, Detail: "x"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := DecodeNoBid(data)
		if err != nil {
			if !errors.Is(err, ErrBadBid) || n != nil {
				t.Fatalf("DecodeNoBid = %v, %v", n, err)
			}
			return
		}
		if again := protocol.MustMarshal(n); !bytes.Equal(again, data) {
			t.Fatalf("accepted %x, re-encodes to %x", data, again)
		}
	})
}
