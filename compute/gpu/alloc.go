package gpu

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Allocation errors.
var (
	ErrInsufficient = errors.New("gpu: not enough free GPUs")
	ErrLeaseExists  = errors.New("gpu: lease already holds GPUs")
)

// Allocation is the GPUs one lease holds.
type Allocation struct {
	Lease   string   `json:"lease"`
	UUIDs   []string `json:"uuids"`
	Indices []int    `json:"indices"`
}

// Allocator hands GPUs to leases, each GPU to at most one lease. It knows
// nothing of detection: callers pass the devices present now.
type Allocator struct {
	mu     sync.Mutex        // guards owner, leases
	owner  map[string]string // GPU UUID -> lease
	leases map[string]Allocation
}

// NewAllocator returns an empty allocator.
func NewAllocator() *Allocator {
	return &Allocator{owner: map[string]string{}, leases: map[string]Allocation{}}
}

// Allocate gives lease n of the free GPUs among present, lowest index
// first, filtered by accept (nil: any). n == 0 allocates nothing and
// succeeds (a CPU-only run).
func (a *Allocator) Allocate(lease string, n int, present []Device, accept func(Device) bool) (Allocation, error) {
	if lease == "" || n < 0 {
		return Allocation{}, fmt.Errorf("gpu: allocate: bad lease %q or count %d", lease, n)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.leases[lease]; ok {
		return Allocation{}, fmt.Errorf("%w: %s", ErrLeaseExists, lease)
	}
	devs := slices.Clone(present)
	slices.SortFunc(devs, func(x, y Device) int { return x.Index - y.Index })
	al := Allocation{Lease: lease, UUIDs: []string{}, Indices: []int{}}
	for _, d := range devs {
		if len(al.UUIDs) == n {
			break
		}
		if _, taken := a.owner[d.UUID]; taken || (accept != nil && !accept(d)) {
			continue
		}
		al.UUIDs = append(al.UUIDs, d.UUID)
		al.Indices = append(al.Indices, d.Index)
	}
	if len(al.UUIDs) < n {
		return Allocation{}, fmt.Errorf("%w: want %d, %d free", ErrInsufficient, n, len(al.UUIDs))
	}
	for _, u := range al.UUIDs {
		a.owner[u] = lease
	}
	a.leases[lease] = al
	return al, nil
}

// Release frees lease's GPUs; releasing an unknown lease does nothing.
func (a *Allocator) Release(lease string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, u := range a.leases[lease].UUIDs {
		delete(a.owner, u)
	}
	delete(a.leases, lease)
}

// Owner returns the lease holding the GPU with uuid, if any.
func (a *Allocator) Owner(uuid string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.owner[uuid]
	return l, ok
}

// Free counts the GPUs among present that no lease holds.
func (a *Allocator) Free(present []Device) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, d := range present {
		if _, taken := a.owner[d.UUID]; !taken {
			n++
		}
	}
	return n
}

// Allocations lists current allocations sorted by lease.
func (a *Allocator) Allocations() []Allocation {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Allocation, 0, len(a.leases))
	for _, al := range a.leases {
		out = append(out, al)
	}
	slices.SortFunc(out, func(x, y Allocation) int {
		switch {
		case x.Lease < y.Lease:
			return -1
		case x.Lease > y.Lease:
			return 1
		}
		return 0
	})
	return out
}
