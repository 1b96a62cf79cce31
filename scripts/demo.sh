#!/usr/bin/env bash
# The main job: set up, then render the bundled title-cards recipe to out/video.mp4 (offline, no keys, no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/reelgraph run title-cards --out out --report out/report.json "$@"
