"""The real ``reelgraph`` command end to end: reports, exit codes, fan-out edits, kill -9, plan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reelgraph.tests.helpers import TEMPLATES, cli_env, logged, read_report, report_executed

pytestmark = pytest.mark.skipif(not __import__("shutil").which("ffmpeg"), reason="ffmpeg is not installed")


def title_cards(tmp_path: Path, lines: list[str]) -> Path:
    document = json.loads((TEMPLATES / "title-cards.json").read_text())
    document["params"]["lines"]["default"] = "\n".join(lines)
    for name, value in {"width": 64, "height": 96, "fps": 10, "seconds": 0.2}.items():
        document["params"][name]["default"] = value
    path = tmp_path / "cards.json"
    path.write_text(json.dumps(document))
    return path


def probe_frames(path: str) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path],
        capture_output=True, text=True, check=True,
    ).stdout
    return int(out.strip())


def test_edit_one_of_twenty_reruns_only_its_chain_and_the_aggregate(cli, tmp_path):
    lines = [f"scene {i}" for i in range(20)]
    recipe = title_cards(tmp_path, lines)
    cli("run", str(recipe), "--out", "out1", "--report", "r1.json", check_code=0)
    first = read_report(tmp_path / "r1.json")
    assert first["status"] == "succeeded"
    assert len(report_executed(first)) == 1 + 3 * 20 + 1
    assert probe_frames(first["outputs"]["video"]) == 20 * 2  # 0.2 s at 10 fps per card, exact

    cli("run", str(recipe), "--out", "out2", "--report", "r2.json", check_code=0)
    assert report_executed(read_report(tmp_path / "r2.json")) == set()

    lines[7] = "scene seven, edited"
    recipe = title_cards(tmp_path, lines)
    cli("run", str(recipe), "--out", "out3", "--report", "r3.json", check_code=0)
    third = read_report(tmp_path / "r3.json")
    assert report_executed(third) == {
        ("lines", None), ("caption", 7), ("card", 7), ("clip", 7), ("video", None)
    }
    entry = next(e for e in third["executions"] if e["node"] == "card" and e["element"] == 7)
    assert set(entry) == {"node", "type", "element", "status", "cache_key", "seconds", "error", "cost", "saved"}
    assert entry["type"] == "image.title_card" and entry["cache_key"].startswith("sha256:")
    assert len(third["outputs"]["cards"]) == 20 and Path(third["outputs"]["video"]).is_file()


def test_kill_9_mid_run_then_rerun_reexecutes_no_finished_node(cli, tmp_path, plugin_path):
    recipe = tmp_path / "slow.json"
    recipe.write_text(json.dumps({
        "name": "slow",
        "nodes": {
            "split": {"type": "text.split", "inputs": {"text": ",".join(f"s{i}" for i in range(16)), "separator": ","}},
            "slow": {"type": "test.slow", "inputs": {"text": {"link": ["split", "items"]}, "seconds": 0.4}},
            "count": {"type": "test.count", "inputs": {"items": {"link": ["slow", "text"]}}},
        },
        "outputs": {"count": {"link": ["count", "count"]}},
    }))
    command = [sys.executable, "-m", "reelgraph.cli", "--home", str(cli.home), "run", str(recipe), "--workers", "2", "--quiet"]
    proc = subprocess.Popen(command, env=cli_env(plugin_path, cli.log), cwd=tmp_path)
    deadline = time.monotonic() + 60
    while len([e for e in logged(cli.log) if e[0] == "slow"]) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    runs = cli("runs", check_code=0).stdout.splitlines()
    assert "interrupted" in runs[0] or "running" in runs[0]
    killed_run = runs[0].split()[0]
    finished = {
        (line.split()[2].split("[")[0], int(line.split()[2].split("[")[1].rstrip("]")) if "[" in line.split()[2] else None)
        for line in cli("runs", killed_run, check_code=0).stdout.splitlines()
        if line.startswith("executed")
    }
    assert len(finished) >= 4  # split plus some slow elements were recorded as finished

    cli("run", str(recipe), "--report", "r.json", check_code=0)
    report = read_report(tmp_path / "r.json")
    rerun = report_executed(report)
    cached = {(e["node"], e["element"]) for e in report["executions"] if e["status"] == "cached"}
    assert rerun and not (rerun & finished)
    assert finished <= cached  # (an execution stored just before the kill may be cached without a record)
    assert {("slow", i) for i in range(16)} <= rerun | cached
    assert "interrupted" in cli("runs", check_code=0).stdout.splitlines()[1]


def test_two_processes_running_the_same_work_execute_it_once(cli, tmp_path, plugin_path):
    recipe = tmp_path / "shared.json"
    recipe.write_text(json.dumps({
        "name": "shared",
        "nodes": {
            "split": {"type": "text.split", "inputs": {"text": "a,b,c,d", "separator": ","}},
            "slow": {"type": "test.slow", "inputs": {"text": {"link": ["split", "items"]}, "seconds": 0.5}},
        },
        "outputs": {"out": {"link": ["slow", "text"]}},
    }))
    command = [sys.executable, "-m", "reelgraph.cli", "--home", str(cli.home), "run", str(recipe), "--quiet"]
    env = cli_env(plugin_path, cli.log)
    procs = [
        subprocess.Popen([*command, "--out", f"o{i}"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    finished = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [stderr for _, stderr in finished]
    assert sorted(e for e in logged(cli.log) if e[0] == "slow") == [("slow", i) for i in range(4)]


INVALID_CASES = {
    "unknown_node_type": (lambda d: d["nodes"]["card"].update(type="image.title_crad"), "card", "nodes.card.type", "did you mean 'image.title_card'"),
    "unknown_input": (lambda d: d["nodes"]["card"]["inputs"].update(colour="#fff"), "card", "nodes.card.inputs.colour", "has no input 'colour'"),
    "missing_input": (lambda d: d["nodes"]["card"]["inputs"].pop("text"), "card", "nodes.card.inputs.text", "required input 'text'"),
    "wrong_literal_type": (lambda d: d["nodes"]["clip"]["inputs"].update(fps="thirty"), "clip", "nodes.clip.inputs.fps", "expected integer"),
    "wrong_link_type": (lambda d: d["nodes"]["clip"]["inputs"].update(image={"link": ["caption", "text"]}), "clip", "nodes.clip.inputs.image", "is string but input 'image' takes image"),
    "link_to_missing_node": (lambda d: d["nodes"]["clip"]["inputs"].update(image={"link": ["crad", "image"]}), "clip", "nodes.clip.inputs.image", "'crad', which is not in the recipe"),
    "link_to_missing_output": (lambda d: d["nodes"]["clip"]["inputs"].update(image={"link": ["card", "png"]}), "clip", "nodes.clip.inputs.image", "has no output 'png'"),
    "cycle": (lambda d: d["nodes"]["lines"]["inputs"].update(text={"link": ["caption", "text"]}), "caption", "nodes.caption", "cycle: caption -> lines -> caption"),
    "unknown_param_ref": (lambda d: d["nodes"]["clip"]["inputs"].update(fps={"param": "framerate"}), "clip", "nodes.clip.inputs.fps", "parameter 'framerate'"),
    "bad_param_default": (lambda d: d["params"]["seconds"].update(default=-1), None, "params.seconds.default", "at least 0.1"),
    "bad_input_form": (lambda d: d["nodes"]["card"]["inputs"].update(text={"lnk": ["caption", "text"]}), "card", "nodes.card.inputs.text", "must be exactly one of"),
}


@pytest.mark.parametrize("case", sorted(INVALID_CASES))
def test_invalid_recipes_exit_2_naming_node_and_field(cli, tmp_path, case):
    mutate, node, path, phrase = INVALID_CASES[case]
    document = json.loads((TEMPLATES / "title-cards.json").read_text())
    mutate(document)
    recipe = tmp_path / "bad.json"
    recipe.write_text(json.dumps(document))
    for command in ("validate", "run", "plan"):
        proc = cli(command, str(recipe))
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert path in proc.stderr and phrase in proc.stderr, proc.stderr
        if node is not None:
            assert f"node {node!r}" in proc.stderr
    errors = json.loads(cli("validate", str(recipe), "--json").stdout)["errors"]
    assert any(e["path"] == path and e["node"] == node for e in errors)


def test_param_errors_exit_2(cli):
    proc = cli("run", "title-cards", "--param", "fps=fast")
    assert proc.returncode == 2 and "params.fps" in proc.stderr and "'fast'" in proc.stderr
    proc = cli("run", "title-cards", "--param", "framerate=30")
    assert proc.returncode == 2 and "no parameter 'framerate'" in proc.stderr
    proc = cli("run", "title-cards", "--param", "fps=500")
    assert proc.returncode == 2 and "at most 120" in proc.stderr
    proc = cli("validate", "no-such-recipe")
    assert proc.returncode == 2 and "neither a recipe file nor a template" in proc.stderr


def test_all_errors_are_reported_at_once(cli, tmp_path):
    document = json.loads((TEMPLATES / "title-cards.json").read_text())
    for key in ("unknown_input", "wrong_literal_type", "link_to_missing_node"):
        INVALID_CASES[key][0](document)
    recipe = tmp_path / "bad.json"
    recipe.write_text(json.dumps(document))
    errors = json.loads(cli("validate", str(recipe), "--json").stdout)["errors"]
    assert {e["kind"] for e in errors} == {"unknown_input", "wrong_type", "missing_node"}


def test_bad_json_exits_2(cli, tmp_path):
    recipe = tmp_path / "broken.json"
    recipe.write_text('{"nodes": {')
    proc = cli("validate", str(recipe))
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr


def test_run_failure_exits_1_with_node_step_and_cause(cli, tmp_path):
    recipe = tmp_path / "fail.json"
    recipe.write_text(json.dumps({
        "name": "fail",
        "nodes": {"s": {"type": "test.slow", "inputs": {"text": "boom", "seconds": 0}}},
        "outputs": {"t": {"link": ["s", "text"]}},
    }))
    proc = cli("run", str(recipe), "--report", "r.json")
    assert proc.returncode == 1
    assert "node s (test.slow), step execute: refusing to process 'boom'" in proc.stderr
    report = read_report(tmp_path / "r.json")
    assert report["status"] == "failed" and report["outputs"] == {"t": None}


def test_plan_says_what_is_cached_and_why_the_rest_is_dirty(cli, tmp_path):
    recipe = title_cards(tmp_path, ["one", "two"])
    plan = json.loads(cli("plan", str(recipe), "--json", check_code=0).stdout)
    assert {(p["node"], p["status"], p["reason"]) for p in plan if p["node"] == "lines"} == {("lines", "run", "never ran")}
    cli("run", str(recipe), check_code=0)
    plan = json.loads(cli("plan", str(recipe), "--json", check_code=0).stdout)
    assert {p["status"] for p in plan} == {"cached"} and len(plan) == 1 + 3 * 2 + 1
    proc = cli("plan", str(recipe), "--param", "seconds=0.3", check_code=0)
    assert "run     clip[0] (video.still): input 'seconds' changed" in proc.stdout
    assert "cached  card[1]" in proc.stdout
    proc = cli("plan", str(recipe), "--param", "lines=one\nthree", check_code=0)
    assert "waits   card (image.title_card): its key depends on the new output of 'lines'" in proc.stdout
    proc = cli("plan", str(recipe), "--force", "card", check_code=0)
    assert "run     card[0] (image.title_card): forced" in proc.stdout


def test_regenerate_pins_a_new_result_and_refuses_deterministic_nodes(cli, tmp_path):
    recipe = tmp_path / "llm.json"
    recipe.write_text(json.dumps({
        "name": "llm",
        "nodes": {
            "script": {"type": "test.random", "inputs": {"prompt": "topic"}},
            "upper": {"type": "test.slow", "inputs": {"text": {"link": ["script", "text"]}, "seconds": 0}},
        },
        "outputs": {"script": {"link": ["script", "text"]}},
    }))
    cli("run", str(recipe), "--out", "a", check_code=0)
    first = (tmp_path / "a" / "script.json").read_text()
    cli("run", str(recipe), "--out", "b", check_code=0)
    assert (tmp_path / "b" / "script.json").read_text() == first  # pinned on first result
    cli("run", str(recipe), "--out", "c", "--regenerate", "script", check_code=0)
    regenerated = (tmp_path / "c" / "script.json").read_text()
    assert regenerated != first
    assert json.loads(recipe.read_text())["nodes"]["script"]["nonce"] == 1
    cli("run", str(recipe), "--out", "d", "--report", "r.json", check_code=0)
    assert (tmp_path / "d" / "script.json").read_text() == regenerated
    assert report_executed(read_report(tmp_path / "r.json")) == set()
    proc = cli("run", str(recipe), "--regenerate", "upper")
    assert proc.returncode == 2 and "deterministic; use --force" in proc.stderr


def test_cache_ls_and_gc(cli, tmp_path):
    recipe = title_cards(tmp_path, ["only"])
    cli("run", str(recipe), check_code=0)
    listing = json.loads(cli("cache", "ls", "--json", check_code=0).stdout)
    assert {entry["node_type"] for entry in listing} == {"text.split", "text.template", "image.title_card", "video.still", "video.concat"}
    assert "removed 0 cached results" in cli("cache", "gc", "--grace-hours", "0", check_code=0).stdout
    proc = cli("cache", "gc", "--keep-runs", "0", "--grace-hours", "0", check_code=0)
    assert "removed 5 cached results" in proc.stdout
    assert json.loads(cli("cache", "ls", "--json", check_code=0).stdout) == []


def test_nodes_lists_builtins_and_entry_point_plugins(cli):
    ids = {entry["id"] for entry in json.loads(cli("nodes", "--json", check_code=0).stdout)}
    assert {"text.template", "image.title_card", "video.concat", "test.slow"} <= ids
