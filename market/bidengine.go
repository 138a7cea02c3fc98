package market

import (
	"fmt"
	"time"
)

// Inventory is what a provider's bid engine knows of itself when a job
// arrives: its hardware, price list, and how many segments it can take on.
type Inventory struct {
	Hardware
	Prices     []Price // sorted by (model, executor)
	FreeSlots  uint32  // segments it can start now
	TotalSlots uint32  // segments it runs at full load
	Exiting    bool    // announced exit: never bids again
}

// PricingStrategy sets a provider's price floor per segment for a job, or
// reports that it has no price for it.
type PricingStrategy interface {
	Price(job *JobRequest, inv *Inventory) (perSegment uint64, ok bool)
}

// StaticPrices prices from the inventory's price list (see Quote).
type StaticPrices struct{}

// Price implements PricingStrategy.
func (StaticPrices) Price(job *JobRequest, inv *Inventory) (uint64, bool) {
	return Quote(inv.Prices, &job.Spec.Require, inv.GPUs)
}

// UtilisationPricing raises a base price as the provider fills up: at
// utilisation u (busy slots / total slots) it asks base x (1 + u x
// MaxSurchargePercent/100), so an idle provider bids its list price and a
// nearly full one bids higher, leaving cheap work to idle peers.
type UtilisationPricing struct {
	Base                PricingStrategy // StaticPrices if nil
	MaxSurchargePercent uint64
}

// Price implements PricingStrategy.
func (u UtilisationPricing) Price(job *JobRequest, inv *Inventory) (uint64, bool) {
	base := u.Base
	if base == nil {
		base = StaticPrices{}
	}
	p, ok := base.Price(job, inv)
	if !ok || inv.TotalSlots == 0 {
		return p, ok
	}
	busy := uint64(inv.TotalSlots - min(inv.FreeSlots, inv.TotalSlots))
	// p * pct * busy / (100 * total), computed so it cannot overflow for
	// sane inputs; a result that would overflow means "no price".
	num, ok1 := mulCheck(p, u.MaxSurchargePercent*busy)
	if !ok1 {
		return 0, false
	}
	sur := num / (100 * uint64(inv.TotalSlots))
	if p+sur < p {
		return 0, false
	}
	return p + sur, true
}

// BidEngine decides a provider's bid for a job. It is pure: the inventory,
// the job, the time and the nonce are inputs.
type BidEngine struct {
	Provider string          // own peer ID string
	Strategy PricingStrategy // StaticPrices if nil
	// Hold is how long after the auction closes the bid stays valid, so the
	// AwardLease tx can land: 2 minutes if 0.
	Hold time.Duration
}

// Decide returns a bid, or the reason not to bid. The checks run in the
// order a provider operator would want to read them: exiting, auction
// closed, requirements, free capacity, price.
func (e *BidEngine) Decide(inv *Inventory, job *JobRequest, now time.Time, nonce uint64) (*Bid, *NoBid) {
	no := func(r NoBidReason, detail string) (*Bid, *NoBid) {
		return nil, &NoBid{Job: job.Job, Provider: e.Provider, Reason: r, Detail: detail}
	}
	if inv.Exiting {
		return no(ReasonExiting, "")
	}
	closeAt := time.UnixMilli(job.CloseAt)
	if !now.Before(closeAt) {
		return no(ReasonClosed, "")
	}
	if why, detail := Unmet(&job.Spec.Require, inv.Hardware); why != 0 {
		return no(why, detail)
	}
	if inv.FreeSlots == 0 {
		return no(ReasonNoCapacity, fmt.Sprintf("0 of %d slots free", inv.TotalSlots))
	}
	strategy := e.Strategy
	if strategy == nil {
		strategy = StaticPrices{}
	}
	price, ok := strategy.Price(job, inv)
	if !ok {
		return no(ReasonNoPrice, "")
	}
	if price > job.Spec.MaxPrice {
		return no(ReasonPriceAboveMax, fmt.Sprintf("floor %d > max %d", price, job.Spec.MaxPrice))
	}
	hold := e.Hold
	if hold <= 0 {
		hold = 2 * time.Minute
	}
	return &Bid{
		Job:      job.Job,
		Provider: e.Provider,
		Price:    price,
		Capacity: min(inv.FreeSlots, job.Spec.Segments),
		Expiry:   closeAt.Add(hold).UnixMilli(),
		Nonce:    nonce,
	}, nil
}
