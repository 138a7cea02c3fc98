package node

import (
	"testing"

	"github.com/gpunode/gpunode/market"
)

func TestPricing(t *testing.T) {
	if _, ok := pricing(0).(market.StaticPrices); !ok {
		t.Fatalf("pricing(0) = %T; want the static price list", pricing(0))
	}
	u, ok := pricing(50).(market.UtilisationPricing)
	if !ok || u.MaxSurchargePercent != 50 {
		t.Fatalf("pricing(50) = %#v; want utilisation pricing with a 50%% surcharge", pricing(50))
	}
	job := &market.JobRequest{Spec: market.JobSpec{Require: market.Requirements{Executor: "wasm"}}}
	inv := &market.Inventory{Hardware: market.Hardware{Executors: []string{"wasm"}},
		Prices: []market.Price{{Executor: "wasm", PerSegment: 100}}, FreeSlots: 0, TotalSlots: 4}
	if p, ok := u.Price(job, inv); !ok || p != 150 {
		t.Fatalf("full provider asks %d, %v; want 150", p, ok)
	}
}
