#!/usr/bin/env bash
# Runs every Go fuzz target in the module for FUZZTIME each (default 60s).
# Targets are discovered with `go test -list '^Fuzz'`, so a new FuzzXxx in any
# package is picked up without editing this script.
#
#   scripts/fuzz.sh                      # all packages, 60s per target
#   FUZZTIME=10s scripts/fuzz.sh ./protocol/...
#
# A crash stops the run with a non-zero status; go test writes the failing
# input to testdata/fuzz/<target>/ in that package, where it becomes a
# regression seed once committed.
#
# Go 1.26's fuzz coordinator can end a clean run with a bare "context deadline
# exceeded" when -fuzztime expires while a worker is busy (golang/go#75804,
# frequent on a loaded machine). Such a run wrote no failing input; it is
# reported as a flake and the target's seed corpus is replayed to be sure.
set -euo pipefail

FUZZTIME="${FUZZTIME:-60s}"
cd "$(dirname "$0")/.."
pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(./...)

ran=0 flaked=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $(go list "${pkgs[@]}"); do
	targets=$(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	[ -z "$targets" ] && continue
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $targets; do
		ran=$((ran + 1))
		echo "=== $pkg $target ($FUZZTIME)"
		corpus="$dir/testdata/fuzz/$target"
		before=$(ls "$corpus" 2>/dev/null | sort || true)
		if go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg" 2>&1 | tee "$log"; then
			continue
		fi
		after=$(ls "$corpus" 2>/dev/null | sort || true)
		if [ "$before" = "$after" ] && grep -q 'context deadline exceeded' "$log" &&
			! grep -q -e 'Failing input written' -e 'panic:' "$log"; then
			echo "fuzz: $target ended with the fuzz coordinator's deadline race (golang/go#75804), no failing input; replaying its corpus"
			go test -run="^${target}\$" "$pkg"
			flaked=$((flaked + 1))
			continue
		fi
		echo "fuzz: $pkg $target FAILED; see the input written under $corpus" >&2
		exit 1
	done
done
echo "fuzz: $ran targets ran for $FUZZTIME each without a crash ($flaked ended with the coordinator deadline race)"
