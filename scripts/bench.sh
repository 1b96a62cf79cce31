#!/usr/bin/env bash
# Benchmarks (tests/bench/): engine overhead and work saved, compose cost (vs MoviePy and the
# encode floor), the offline template, API submission load and the ComfyUI pool. Each reports
# ratios against baselines measured in the same run and never asserts timings.
# Flags (e.g. --quick) go to every benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
# MoviePy (the compose comparison) pins pillow<12, so it gets a venv of its own
if [ ! -x .venv-moviepy/bin/python ]; then python3 -m venv .venv-moviepy; fi
.venv-moviepy/bin/python -m pip install -q --disable-pip-version-check -e . moviepy
export REELGRAPH_MOVIEPY_PYTHON="$PWD/.venv-moviepy/bin/python"
for bench in run_benchmarks compose_bench template_bench server_load comfy_bench; do
    if [ -f "tests/bench/$bench.py" ]; then
        echo "== $bench" >&2
        .venv/bin/python -m "reelgraph.tests.bench.$bench" "$@"
    fi
done
