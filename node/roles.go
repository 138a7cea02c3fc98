package node

import (
	"fmt"
	"sort"
	"strings"
)

// Role is a part a node plays in the market.
type Role string

// The roles a node can take, any combination of them.
const (
	RoleProvider  Role = "provider"  // rents out GPUs/CPUs: offers, bids, runs leased work
	RoleRenter    Role = "renter"    // buys compute: opens jobs, awards leases, gets results
	RoleValidator Role = "validator" // stakes and runs the BFT consensus
)

// ParseRoles parses role names (each entry may itself be comma-separated),
// rejecting unknown ones and removing duplicates. The result is sorted.
func ParseRoles(names []string) ([]Role, error) {
	seen := map[Role]bool{}
	for _, n := range names {
		for _, part := range strings.Split(n, ",") {
			r := Role(strings.ToLower(strings.TrimSpace(part)))
			switch r {
			case "":
				continue
			case RoleProvider, RoleRenter, RoleValidator:
				seen[r] = true
			default:
				return nil, fmt.Errorf("%w: unknown role %q (want provider, renter, validator)", ErrConfig, part)
			}
		}
	}
	if len(seen) == 0 {
		return nil, fmt.Errorf("%w: no role given", ErrConfig)
	}
	out := make([]Role, 0, len(seen))
	for r := range seen {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// RoleNames is the roles as strings, for output.
func RoleNames(roles []Role) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return out
}

// HasRole reports whether roles contains r.
func HasRole(roles []Role, r Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}
