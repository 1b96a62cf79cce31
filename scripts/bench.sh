#!/usr/bin/env bash
# Benchmarks (tests/bench/): engine overhead and work saved, reported as ratios, never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python -m reelgraph.tests.bench.run_benchmarks "$@"
