#!/usr/bin/env bash
# The test suite: set up, then run pytest (real ffmpeg, real subprocesses, hypothesis).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
.venv/bin/python -m pytest "$@"
