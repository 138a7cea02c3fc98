#!/usr/bin/env bash
# make demo: bring up a whole local network on loopback (4 validators,
# 3 providers, 1 renter, each its own gpunode process) and train a model on
# its market: the renter adds a generated data set and bin/train.wasm and
# opens an 8-segment job (replicate:2); the providers bid, win, run and are
# paid; the renter averages the segments' weights into the model and
# evaluates it. It ends with the summary and stops every node. Extra
# arguments go to `gpunode devnet` (e.g. --json, --kill-provider).
set -euo pipefail
cd "$(dirname "$0")/.."
home=${DEMO_HOME:-.demo}
rm -rf "$home"
exec bin/gpunode devnet --home "$home" --validators 4 --providers 3 --renters 1 --scenario train "$@"
