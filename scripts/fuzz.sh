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
set -euo pipefail

FUZZTIME="${FUZZTIME:-60s}"
cd "$(dirname "$0")/.."
pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(./...)

found=0
for pkg in $(go list "${pkgs[@]}"); do
	targets=$(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	for target in $targets; do
		found=$((found + 1))
		echo "=== $pkg $target ($FUZZTIME)"
		go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg"
	done
done
echo "fuzz: $found targets ran for $FUZZTIME each without a crash"
