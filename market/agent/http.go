package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/market/settle"
	"github.com/gpunode/gpunode/protocol"
)

// RegisterAPI adds the market endpoints (see api.go) to srv.
func RegisterAPI(srv *api.Server, a *Agent) error {
	routes := []api.Route{
		{Method: http.MethodGet, Path: "/market/offers", Handler: api.JSON(a.apiOffers)},
		{Method: http.MethodGet, Path: "/market/prices", Handler: api.JSON(a.apiPrices)},
		{Method: http.MethodPost, Path: "/market/jobs", Handler: api.JSON(a.apiSubmit)},
		{Method: http.MethodGet, Path: "/market/jobs", Handler: api.JSON(a.apiJobs)},
		{Method: http.MethodGet, Path: "/market/jobs/{id}", Handler: api.JSON(a.apiJob)},
		{Method: http.MethodGet, Path: "/market/jobs/{id}/bids", Handler: api.JSON(a.apiBids)},
		{Method: http.MethodPost, Path: "/market/jobs/{id}/cancel", Handler: api.JSON(a.apiCancel)},
		{Method: http.MethodGet, Path: "/market/leases", Handler: api.JSON(a.apiLeases)},
		{Method: http.MethodGet, Path: "/market/provider", Handler: api.JSON(a.apiProvider)},
		{Method: http.MethodPost, Path: "/market/exit", Handler: api.JSON(a.apiExit)},
	}
	for _, r := range routes {
		if err := srv.Handle(r); err != nil {
			return err
		}
	}
	return nil
}

func offerView(o *market.Offer, rep settle.Reputation) OfferView {
	v := OfferView{Provider: o.Provider, Seq: o.Seq, Status: o.Status.String(), Region: o.Region, CPUs: o.CPUCores,
		Memory: o.Memory, Executors: slices.Clone(o.Executors), Stake: o.Stake, FreeSlots: o.FreeSlots,
		Reputation: Rep(rep), IssuedAt: o.IssuedAt, Expires: o.Expires().UnixMilli()}
	if o.HardwareClass.Defined() {
		v.HardwareClass = o.HardwareClass.String()
	}
	for _, g := range o.GPUs {
		v.GPUs = append(v.GPUs, GPUGroupView{Model: g.Model, VRAM: g.VRAM, Count: g.Count})
	}
	for _, p := range o.Prices {
		v.Prices = append(v.Prices, PriceListItem{Model: p.Model, Executor: p.Executor, Price: p.PerSegment})
	}
	return v
}

// Offers is the node's order book, cheapest first.
func (a *Agent) Offers() []OfferView {
	st := a.state()
	all := a.book.All(a.clk.Now())
	out := make([]OfferView, 0, len(all))
	for i := range all {
		rep, _ := settle.ReputationOf(st, all[i].Provider)
		out = append(out, offerView(&all[i], rep))
	}
	slices.SortFunc(out, func(x, y OfferView) int {
		px, py := minPrice(x), minPrice(y)
		if px != py {
			if px < py {
				return -1
			}
			return 1
		}
		return cmpStr(x.Provider, y.Provider)
	})
	return out
}

func minPrice(o OfferView) uint64 {
	m := ^uint64(0)
	for _, p := range o.Prices {
		m = min(m, p.Price)
	}
	return m
}

func (a *Agent) apiOffers(*http.Request, struct{}) ([]OfferView, error) { return a.Offers(), nil }

func (a *Agent) apiPrices(*http.Request, struct{}) ([]PriceView, error) { return a.Prices(), nil }

// Prices is the price index per GPU model ("cpu" for CPU-only work).
func (a *Agent) Prices() []PriceView {
	out := []PriceView{}
	for _, m := range a.prices.Models() {
		s, ok := a.prices.Stats(m)
		if !ok {
			continue
		}
		name := m
		if name == "" {
			name = "cpu"
		}
		out = append(out, PriceView{Model: name, Count: s.Count, Min: s.Min, Q1: s.Q1, Median: s.Median, Q3: s.Q3, Max: s.Max})
	}
	return out
}

// SubmitJob opens a job as this node's renter (see SubmitJobRequest).
func (a *Agent) SubmitJob(ctx context.Context, in SubmitJobRequest) (SubmitJobResponse, error) {
	if a.rent == nil {
		return SubmitJobResponse{}, ErrNotRenter
	}
	return a.rent.submit(ctx, in)
}

func (a *Agent) apiSubmit(r *http.Request, in SubmitJobRequest) (SubmitJobResponse, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	res, err := a.SubmitJob(ctx, in)
	return res, apiErr(err)
}

func apiErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrBadJob):
		return api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "%v", err)
	case errors.Is(err, ErrNotRenter), errors.Is(err, ErrNotProvider):
		return api.Errorf(http.StatusConflict, api.CodeConflict, "%v", err)
	case errors.Is(err, ErrUnknownJob):
		return api.Errorf(http.StatusNotFound, api.CodeNotFound, "%v", err)
	case errors.Is(err, ErrTxFailed):
		return api.Errorf(http.StatusConflict, api.CodeConflict, "%v", err)
	}
	return err
}

func (a *Agent) apiJobs(*http.Request, struct{}) ([]JobView, error) {
	if a.rent == nil {
		return nil, apiErr(ErrNotRenter)
	}
	out := []JobView{}
	for _, id := range a.rent.list() {
		v, _ := a.Job(id)
		out = append(out, v)
	}
	return out, nil
}

// Job is the view of job id: from the chain, plus the renter's own record
// when this node opened it. ErrUnknownJob if neither knows it.
func (a *Agent) Job(id string) (JobView, error) {
	cid, err := protocol.ParseCID(id)
	if err != nil {
		return JobView{}, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "bad job ID %q: %v", id, err)
	}
	v := JobView{Job: id, State: "unknown", Paid: map[string]uint64{}}
	st := a.state()
	if job, ok, err := settle.JobOf(st, cid); err != nil {
		return JobView{}, err
	} else if ok {
		v.Renter = job.Renter
		v.State = "open"
		if job.Cancelled {
			v.State = "cancelled"
		}
		v.Segments = job.Spec.Segments
		v.Verify = job.Spec.Verify
		v.MaxPrice = job.Spec.MaxPrice
		v.Deposit = job.Deposit
		v.Escrow = st.Escrow(settle.EscrowID(cid))
		if job.Spec.Program.Defined() {
			v.Program = job.Spec.Program.String()
		}
		v.Runtime = job.Spec.Runtime
		v.SegmentList = make([]SegmentView, len(job.Segments))
		for i, s := range job.Segments {
			sv := SegmentView{Index: uint32(i), State: s.State.String()}
			for _, l := range s.Leases {
				lv := LeaseView{Job: id, Segment: uint32(i), Provider: l.Provider, Price: l.Price, Deadline: l.Deadline}
				if l.Output.Defined() {
					lv.Output = l.Output.String()
				}
				sv.Leases = append(sv.Leases, lv)
			}
			switch s.State {
			case settle.SegVerified:
				v.SegmentsDone++
				sv.Output = agreedOutput(s.Leases)
			case settle.SegPaid:
				v.SegmentsDone++
				v.SegmentsPaid++
				sv.Output = agreedOutput(s.Leases)
			}
			v.SegmentList[i] = sv
		}
	}
	if a.rent != nil {
		a.rent.fill(&v, id)
	}
	if v.State == "unknown" {
		return v, apiErr(ErrUnknownJob)
	}
	return v, nil
}

// agreedOutput is the output the segment's remaining leases agree on.
func agreedOutput(ls []settle.Lease) string {
	for _, l := range ls {
		if l.Output.Defined() {
			return l.Output.String()
		}
	}
	return ""
}

func (a *Agent) apiJob(r *http.Request, _ struct{}) (JobView, error) {
	return a.Job(r.PathValue("id"))
}

func (a *Agent) apiBids(r *http.Request, _ struct{}) (BidsView, error) {
	v, _ := a.Bids(r.PathValue("id"))
	return v, nil
}

func (a *Agent) apiCancel(r *http.Request, _ struct{}) (TxResponse, error) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	res, err := a.CancelJob(ctx, r.PathValue("id"))
	return res, apiErr(err)
}

func (a *Agent) apiLeases(*http.Request, struct{}) ([]LeaseView, error) {
	if a.prov == nil {
		return nil, apiErr(ErrNotProvider)
	}
	return a.prov.leaseViews(), nil
}

func (a *Agent) apiProvider(*http.Request, struct{}) (ProviderView, error) {
	if a.prov == nil {
		return ProviderView{}, apiErr(ErrNotProvider)
	}
	return a.prov.view(), nil
}

func (a *Agent) apiExit(r *http.Request, _ struct{}) (TxResponse, error) {
	res, err := a.Exit(r.Context())
	return res, apiErr(err)
}

// Exit announces this provider's exit (market.exit): it stops bidding and
// its offer says disconnected; its running leases finish.
func (a *Agent) Exit(ctx context.Context) (TxResponse, error) {
	if a.prov == nil {
		return TxResponse{}, ErrNotProvider
	}
	tx, err := a.prov.exit(ctx)
	return TxResponse{Tx: tx}, err
}

// Bids is the auction view of job id (rounds, bids, reasons, rejections).
func (a *Agent) Bids(id string) (BidsView, bool) {
	v := BidsView{Job: id, Rounds: []RoundView{}}
	ok := false
	if a.rent != nil {
		if rv, found := a.rent.bidsView(id); found {
			v, ok = rv, true
		}
	}
	v.Rejected = a.rejectedFor(id)
	return v, ok
}

// CancelJob cancels this renter's job id.
func (a *Agent) CancelJob(ctx context.Context, id string) (TxResponse, error) {
	if a.rent == nil {
		return TxResponse{}, ErrNotRenter
	}
	c, err := protocol.ParseCID(id)
	if err != nil {
		return TxResponse{}, fmt.Errorf("%w: bad job ID: %w", ErrBadJob, err)
	}
	return a.rent.cancel(ctx, c)
}

// SetInventory updates the provider's hardware, CPU, memory and price list
// (the node calls it when GPUs appear or vanish); the new offer goes out at
// once. A no-op on a node that is not a provider.
func (a *Agent) SetInventory(hw market.Hardware, cpus uint32, mem uint64, prices []market.Price) {
	if a.prov != nil {
		a.prov.setInventory(hw, cpus, mem, prices)
	}
}
