package market

import (
	"errors"
	"testing"
	"time"

	"github.com/gpunode/gpunode/protocol"
)

func TestValidateOffer(t *testing.T) {
	p, q := key(t, 1), key(t, 2)
	book := newBook(t)
	if err := book.Put(testOffer(p.id, 5), p.id, t0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		offer  *Offer
		author string
		now    time.Time
		want   error
	}{
		{"newer", testOffer(p.id, 6), p.id, t0, nil},
		{"same sequence", testOffer(p.id, 5), p.id, t0, ErrStaleOffer},
		{"older sequence", testOffer(p.id, 4), p.id, t0, ErrStaleOffer},
		{"signed by another peer", testOffer(p.id, 6), q.id, t0, ErrWrongAuthor},
		{"expired", testOffer(p.id, 6), p.id, t0.Add(60 * time.Second), ErrOfferExpired},
		{"from the future", testOffer(p.id, 6), p.id, t0.Add(-MaxClockSkew - time.Millisecond), ErrFuture},
		{"malformed", &Offer{Provider: p.id}, p.id, t0, ErrBadOffer},
	}
	for _, tt := range tests {
		err := ValidateOffer(tt.offer, tt.author, tt.now, book)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: ValidateOffer = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestOpenOffer(t *testing.T) {
	p, q := key(t, 1), key(t, 2)
	raw := seal(t, p, protocol.KindOffer, testOffer(p.id, 1))
	o, err := OpenOffer(raw, testChain, t0, nil)
	if err != nil || o.Seq != 1 {
		t.Fatalf("OpenOffer = %+v, %v", o, err)
	}
	tampered := append([]byte(nil), raw...)
	tampered[len(tampered)-1] ^= 1 // last byte of the signature
	if _, err := OpenOffer(tampered, testChain, t0, nil); !errors.Is(err, protocol.ErrBadSignature) {
		t.Errorf("tampered offer: %v, want ErrBadSignature", err)
	}
	if _, err := OpenOffer(seal(t, q, protocol.KindOffer, testOffer(p.id, 1)), testChain, t0, nil); !errors.Is(err, ErrWrongAuthor) {
		t.Errorf("offer signed by another peer: %v, want ErrWrongAuthor", err)
	}
	if _, err := OpenOffer(seal(t, p, protocol.KindBid, testOffer(p.id, 1)), testChain, t0, nil); !errors.Is(err, ErrWrongKind) {
		t.Errorf("offer in a bid envelope: %v, want ErrWrongKind", err)
	}
	if _, err := OpenOffer(raw, "other-chain", t0, nil); !errors.Is(err, protocol.ErrWrongChain) {
		t.Errorf("offer for another chain: %v, want ErrWrongChain", err)
	}
}

func TestOpenJobRequest(t *testing.T) {
	r, q := key(t, 2), key(t, 3)
	req := testRequest(t, r.id, testSpec())
	got, err := OpenJobRequest(seal(t, r, protocol.KindJob, req), testChain, t0)
	if err != nil || !got.Job.Equals(req.Job.Cid) {
		t.Fatalf("OpenJobRequest = %+v, %v", got, err)
	}
	if _, err := OpenJobRequest(seal(t, q, protocol.KindJob, req), testChain, t0); !errors.Is(err, ErrWrongAuthor) {
		t.Errorf("job signed by another peer: %v, want ErrWrongAuthor", err)
	}
	if _, err := OpenJobRequest(seal(t, r, protocol.KindJob, req), testChain, time.UnixMilli(req.CloseAt)); !errors.Is(err, ErrAuctionClosed) {
		t.Errorf("job after its close: %v, want ErrAuctionClosed", err)
	}
	far := *req
	far.CloseAt = t0.Add(MaxAuctionWindow + time.Millisecond).UnixMilli()
	if _, err := OpenJobRequest(seal(t, r, protocol.KindJob, &far), testChain, t0); !errors.Is(err, ErrBadJob) {
		t.Errorf("job closing too far ahead: %v, want ErrBadJob", err)
	}
	stale := *req
	stale.Spec.Segments++
	if _, err := OpenJobRequest(seal(t, r, protocol.KindJob, &stale), testChain, t0); !errors.Is(err, ErrBadJob) {
		t.Errorf("job whose ID is not its spec's: %v, want ErrBadJob", err)
	}
}

// TestBidValidator is issue 6 acceptance 5: bids with bad signatures, for
// unknown jobs, above max price, after close, replayed, or from unstaked
// peers are rejected at the gossip validator and never reach the award.
func TestBidValidator(t *testing.T) {
	renter := key(t, 100)
	req := testRequest(t, renter.id, testSpec()) // max price 120, closes at t0+30s
	other := testSpec()
	other.Salt = 1
	unknown, _ := other.ID()

	staked := map[string]testKey{}
	for i := range 8 {
		k := key(t, int64(i+1))
		staked[k.id] = k
	}
	unstaked := key(t, 50)
	stakes := stakeSet{}
	for id := range staked {
		stakes[id] = true
	}
	v := &BidValidator{ChainID: testChain, Jobs: jobMap{req.Job.String(): req}, Stakes: stakes, Replays: NewReplayFilter()}

	bidOf := func(k testKey, price uint64, nonce uint64) *Bid {
		return &Bid{Job: req.Job, Provider: k.id, Price: price, Capacity: 10, Expiry: req.CloseAt + 60_000, Nonce: nonce}
	}
	keys := []testKey{}
	for i := range 8 {
		keys = append(keys, key(t, int64(i+1)))
	}
	// The rejected bids are the cheapest, so if any reached the award it
	// would win.
	good := seal(t, keys[0], protocol.KindBid, bidOf(keys[0], 100, 1))
	badSig := seal(t, keys[1], protocol.KindBid, bidOf(keys[1], 1, 1))
	badSig[len(badSig)-1] ^= 0x80
	forUnknown := bidOf(keys[2], 1, 1)
	forUnknown.Job = unknown
	expiredBid := bidOf(keys[6], 1, 1)
	expiredBid.Expiry = t0.Add(time.Second).UnixMilli()
	cases := []struct {
		name string
		raw  []byte
		now  time.Time
		want error
	}{
		{"good", good, t0, nil},
		{"bad signature", badSig, t0, protocol.ErrBadSignature},
		{"unknown job", seal(t, keys[2], protocol.KindBid, forUnknown), t0, ErrUnknownJob},
		{"above max price", seal(t, keys[3], protocol.KindBid, bidOf(keys[3], 121, 1)), t0, ErrAboveMax},
		{"after close", seal(t, keys[4], protocol.KindBid, bidOf(keys[4], 1, 1)), time.UnixMilli(req.CloseAt), ErrAuctionClosed},
		{"replayed", good, t0.Add(time.Second), ErrReplayed},
		{"unstaked", seal(t, unstaked, protocol.KindBid, bidOf(unstaked, 1, 1)), t0, ErrNotStaked},
		{"signed by another peer", seal(t, keys[5], protocol.KindBid, bidOf(keys[7], 1, 1)), t0, ErrWrongAuthor},
		{"expired", seal(t, keys[6], protocol.KindBid, expiredBid), t0.Add(2 * time.Second), ErrBidExpired},
		{"wrong kind", seal(t, keys[7], KindNoBid, bidOf(keys[7], 1, 1)), t0, ErrWrongKind},
		{"malformed", seal(t, keys[7], protocol.KindBid, &Bid{Job: req.Job, Provider: keys[7].id}), t0, ErrBadBid},
		{"revised with a new nonce", seal(t, keys[0], protocol.KindBid, bidOf(keys[0], 90, 2)), t0, nil},
	}
	set := NewBidSet(req.Job)
	for _, c := range cases {
		b, env, err := v.Validate(c.raw, c.now)
		if c.want == nil {
			if err != nil || b == nil || env == nil {
				t.Fatalf("%s: Validate = %v", c.name, err)
			}
			set.AddBid(*b)
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Validate = %v, want %v", c.name, err, c.want)
		}
		if b != nil || env != nil {
			t.Errorf("%s: Validate returned a bid with error %v", c.name, err)
		}
	}
	var cands []Candidate
	for _, b := range set.Bids() {
		cands = append(cands, Candidate{Bid: b})
	}
	res, err := Award(&AwardRequest{Job: req, Now: t0, Bids: cands})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Winners) != 1 || res.Winners[0].Provider != keys[0].id || res.Winners[0].Bid.Price != 90 {
		t.Fatalf("winners %+v, want only %s at its revised price 90", res.Winners, keys[0].id)
	}
}

func TestReplayFilterPrune(t *testing.T) {
	f := NewReplayFilter()
	k := BidKey{"p", "j", 1}
	if !f.Add(k, t0.UnixMilli()) || f.Add(k, t0.UnixMilli()) {
		t.Fatal("Add: first must succeed, second fail")
	}
	if n := f.Prune(t0.Add(-time.Millisecond)); n != 0 || !f.Seen(k) {
		t.Fatalf("Prune before expiry dropped %d", n)
	}
	if n := f.Prune(t0); n != 1 || f.Seen(k) || f.Len() != 0 {
		t.Fatalf("Prune at expiry dropped %d, len %d", n, f.Len())
	}
}

func TestOpenNoBid(t *testing.T) {
	p, q := key(t, 1), key(t, 2)
	req := testRequest(t, key(t, 9).id, testSpec())
	nb := &NoBid{Job: req.Job, Provider: p.id, Reason: ReasonNoCapacity}
	if got, err := OpenNoBid(seal(t, p, KindNoBid, nb), testChain); err != nil || got.Reason != ReasonNoCapacity {
		t.Fatalf("OpenNoBid = %+v, %v", got, err)
	}
	if _, err := OpenNoBid(seal(t, q, KindNoBid, nb), testChain); !errors.Is(err, ErrWrongAuthor) {
		t.Errorf("no-bid signed by another peer: %v, want ErrWrongAuthor", err)
	}
	nb.Reason = 0
	if _, err := OpenNoBid(seal(t, p, KindNoBid, nb), testChain); !errors.Is(err, ErrBadBid) {
		t.Errorf("no-bid without reason: %v, want ErrBadBid", err)
	}
}
