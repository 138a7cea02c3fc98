package agent

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/market/settle"
	"github.com/gpunode/gpunode/protocol"
)

func TestSpecOf(t *testing.T) {
	r := &renter{a: &Agent{cfg: Config{AuctionWindow: 3 * time.Second}}}
	prog := protocol.BlockCID([]byte("program")).String()
	in := protocol.BlockCID([]byte("input")).String()
	good := SubmitJobRequest{Program: prog, Inputs: []string{in, in}, Segments: 2, MaxPrice: 10}
	s, window, err := r.specOf(good)
	if err != nil {
		t.Fatalf("specOf(good) = %v", err)
	}
	if s.Deadline != 60 || s.Verify != "replicate:1" || s.Require.Executor != "wasm" || window != 3*time.Second {
		t.Fatalf("defaults: %+v, window %s", s, window)
	}
	rt, _, err := r.specOf(SubmitJobRequest{Runtime: "torch", Segments: 1, MaxPrice: 1, AuctionMs: 500, GPUModels: []string{"B", "A", "B"}, GPUCount: 1})
	if err != nil || rt.Require.Executor != "process" || strings.Join(rt.Require.GPUModels, ",") != "A,B" {
		t.Fatalf("runtime job: %+v, %v", rt, err)
	}
	bad := []struct {
		name string
		req  SubmitJobRequest
		want string
	}{
		{"no program or runtime", SubmitJobRequest{Segments: 1, MaxPrice: 1}, ""},
		{"bad program CID", SubmitJobRequest{Program: "nope", Segments: 1, MaxPrice: 1}, "program"},
		{"bad input CID", SubmitJobRequest{Program: prog, Inputs: []string{"x"}, Segments: 1, MaxPrice: 1}, "input 0"},
		{"inputs not one per segment", SubmitJobRequest{Program: prog, Inputs: []string{in}, Segments: 2, MaxPrice: 1}, ""},
		{"zero segments", SubmitJobRequest{Program: prog, MaxPrice: 1}, ""},
		{"bad policy", SubmitJobRequest{Program: prog, Segments: 1, MaxPrice: 1, Verify: "majority:3"}, ""},
		{"auction too long", SubmitJobRequest{Program: prog, Segments: 1, MaxPrice: 1, AuctionMs: int64(2 * time.Hour / time.Millisecond)}, "auction"},
	}
	for _, c := range bad {
		_, _, err := r.specOf(c.req)
		if !errors.Is(err, ErrBadJob) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: specOf = %v; want ErrBadJob mentioning %q", c.name, err, c.want)
		}
	}
}

func TestRejectReason(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", market.ErrUnknownJob), "unknown job"},
		{fmt.Errorf("x: %w", market.ErrAboveMax), "above max price"},
		{fmt.Errorf("x: %w", market.ErrAuctionClosed), "auction closed"},
		{fmt.Errorf("x: %w", market.ErrReplayed), "replayed"},
		{fmt.Errorf("x: %w", market.ErrNotStaked), "not staked"},
		{fmt.Errorf("x: %w", protocol.ErrBadSignature), "bad signature"},
		{errors.New("other"), "malformed"},
	} {
		if got := rejectReason(c.err); got != c.want {
			t.Errorf("rejectReason(%v) = %q; want %q", c.err, got, c.want)
		}
	}
}

// A closed job's segments come from its events once the chain deleted it.
func TestSegmentsFromEvents(t *testing.T) {
	j := &rjob{id: protocol.NewCID(protocol.BlockCID([]byte("j"))), spec: market.JobSpec{Segments: 3},
		leasePrice: map[string]uint64{"p/0": 7, "q/1": 9}}
	j.events = []JobEvent{
		{Kind: string(settle.EventPaid), Account: "p", Segment: "0", Amount: 7},
		{Kind: string(settle.EventPaid), Account: "q", Segment: "1", Amount: 9},
		{Kind: string(settle.EventPaid), Account: "q", Segment: "9", Amount: 9}, // out of range: ignored
	}
	segs := segmentsFromEvents(j)
	if len(segs) != 3 || segs[0].State != "paid" || segs[1].State != "paid" || segs[2].State != "cancelled" ||
		segs[0].Leases[0].Provider != "p" || segs[1].Leases[0].Price != 9 {
		t.Fatalf("segments %+v", segs)
	}
}
