#!/usr/bin/env bash
# make demo: bring up a whole local network on loopback (4 validators,
# 3 providers, 1 renter, each its own gpunode process), check that every node
# finds the others, print where each one is, and stop them all.
set -euo pipefail
cd "$(dirname "$0")/.."
home=${DEMO_HOME:-.demo}
rm -rf "$home"
exec bin/gpunode devnet --home "$home" --validators 4 --providers 3 --renters 1 --scenario connect "$@"
