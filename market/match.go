package market

import (
	"fmt"
	"slices"
)

// Hardware is what requirements are matched against: an offer's or a bid
// engine's inventory.
type Hardware struct {
	GPUs      []GPUGroup
	Executors []string
	Region    string
}

// Unmet says which requirement hw fails first (executor, region, GPU
// model, VRAM, GPU count) with a human detail, or 0 if it meets them all.
func Unmet(r *Requirements, hw Hardware) (NoBidReason, string) {
	why, suitable, bestVRAM := unmet(r, &hw)
	switch why {
	case 0:
		return 0, ""
	case ReasonExecutor:
		return why, fmt.Sprintf("no executor %q", r.Executor)
	case ReasonRegion:
		return why, fmt.Sprintf("region %q, want %q", hw.Region, r.Region)
	case ReasonGPUModel:
		return why, fmt.Sprintf("no GPU of %v", r.GPUModels)
	case ReasonVRAM:
		return why, fmt.Sprintf("have %d bytes, need %d", bestVRAM, r.MinVRAM)
	default:
		return why, fmt.Sprintf("have %d suitable GPUs, need %d", suitable, r.GPUCount)
	}
}

// unmet is Unmet without the words, for the order book's hot path.
func unmet(r *Requirements, hw *Hardware) (why NoBidReason, suitable, bestVRAM uint64) {
	if !slices.Contains(hw.Executors, r.Executor) {
		return ReasonExecutor, 0, 0
	}
	if r.Region != "" && hw.Region != r.Region {
		return ReasonRegion, 0, 0
	}
	if r.GPUCount == 0 {
		return 0, 0, 0
	}
	var modelOK uint64
	for _, g := range hw.GPUs {
		if !modelAccepted(r, g.Model) {
			continue
		}
		modelOK += uint64(g.Count)
		bestVRAM = max(bestVRAM, g.VRAM)
		if g.VRAM >= r.MinVRAM {
			suitable += uint64(g.Count)
		}
	}
	switch {
	case modelOK == 0:
		return ReasonGPUModel, suitable, bestVRAM
	case suitable == 0:
		return ReasonVRAM, suitable, bestVRAM
	case suitable < uint64(r.GPUCount):
		return ReasonGPUCount, suitable, bestVRAM
	}
	return 0, suitable, bestVRAM
}

func modelAccepted(r *Requirements, model string) bool {
	if len(r.GPUModels) == 0 {
		return true
	}
	_, ok := slices.BinarySearch(r.GPUModels, model)
	return ok
}

// Meets reports whether o's hardware meets r.
func (o *Offer) Meets(r *Requirements) bool {
	hw := o.Hardware()
	why, _, _ := unmet(r, &hw)
	return why == 0
}

// Hardware is the offer's hardware for matching.
func (o *Offer) Hardware() Hardware {
	return Hardware{GPUs: o.GPUs, Executors: o.Executors, Region: o.Region}
}

// Quote is the price per segment a price list gives for a job: the sum of
// the per-GPU prices of the cheapest GPUs that meet r (GPUCount of them),
// or the CPU price (model "") for CPU-only work. ok is false when the list
// has no price for enough suitable GPUs.
func Quote(prices []Price, r *Requirements, gpus []GPUGroup) (perSegment uint64, ok bool) {
	priceOf := func(model string) (uint64, bool) {
		for _, p := range prices {
			if p.Model == model && p.Executor == r.Executor {
				return p.PerSegment, true
			}
		}
		return 0, false
	}
	if r.GPUCount == 0 {
		return priceOf("")
	}
	type unit struct {
		price uint64
		count uint32
	}
	var buf [8]unit
	units := buf[:0]
	for _, g := range gpus {
		if !modelAccepted(r, g.Model) || g.VRAM < r.MinVRAM {
			continue
		}
		if p, ok := priceOf(g.Model); ok {
			units = append(units, unit{p, g.Count})
		}
	}
	slices.SortFunc(units, func(a, b unit) int { return cmpU64(a.price, b.price) })
	need := uint64(r.GPUCount)
	var total uint64
	for _, u := range units {
		take := min(need, uint64(u.count))
		add, ok := mulCheck(u.price, take)
		if !ok || total+add < total {
			return 0, false
		}
		total += add
		need -= take
		if need == 0 {
			return total, true
		}
	}
	return 0, false
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
