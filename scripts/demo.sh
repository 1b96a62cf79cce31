#!/usr/bin/env bash
# The main job: set up, render the bundled `explainer` recipe offline (no keys, no GPU) to
# out/video.mp4, run it again (everything cached), then edit one scene's text and show that only
# that scene's chain, the soundtrack and the final compose run again (out/edited/video.mp4).
# Extra flags go to every `reelgraph run`, e.g. --param topic="..." or --param tts_provider=openai.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
run() { .venv/bin/reelgraph run explainer "$@"; }

echo "== 1/3 render (first run executes every node)" >&2
run --out out --report out/report.json "$@"
echo "== 2/3 same recipe again (everything comes from the cache)" >&2
run --out out --report out/report-again.json --quiet "$@"
echo "== 3/3 edit the text of scene 3 (only its chain, the soundtrack and the compose rerun)" >&2
edited=$(.venv/bin/python - <<'PY'
import json
from reelgraph.graphs.templates import template_path
scenes = json.loads(template_path("explainer").read_text())["params"]["script"]["default"].split("\n\n")
scenes[2] = "Back in the hive, younger bees take the nectar, add enzymes and spread it thin across the comb."
print("\n\n".join(scenes))
PY
)
run --out out/edited --report out/report-edited.json --param "script=$edited" "$@"
.venv/bin/python - <<'PY'
import json
for name in ("report.json", "report-again.json", "report-edited.json"):
    report = json.load(open(f"out/{name}"))
    ran = sorted({e["node"] + ("" if e["element"] is None else f"[{e['element']}]") for e in report["executions"] if e["status"] == "executed"})
    print(f"{name}: {report['status']}, {report['counts']}; executed: {', '.join(ran) or 'nothing'}")
print("video: out/video.mp4 (edited: out/edited/video.mp4)")
PY
