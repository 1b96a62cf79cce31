"""``reelgraph comfy up | doctor | provision``, and the pool ``reelgraph run`` uses.

Only argparse at import time: building the CLI parser must stay cheap. ``reelgraph comfy up``
writes ``<home>/comfy/instances.json`` while it supervises; ``reelgraph run`` (without
``--comfy``) uses the instances listed there when the supervisor is alive and they answer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .pool import ComfyPool

STATE_FILE = "instances.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``comfy`` command's actions (``parser`` is its sub-parser)."""
    actions = parser.add_subparsers(dest="comfy_command", required=True, metavar="ACTION")

    up = actions.add_parser("up", help="start one ComfyUI per GPU and supervise them (foreground)",
                            description="Start ComfyUI from a checkout (one instance per GPU), wait until each "
                                        "answers, warm it up, and restart it when it dies. Ctrl-C stops them.")
    up.add_argument("--path", type=Path, required=True, help="the ComfyUI checkout (the folder with main.py)")
    up.add_argument("--gpus", help="comma-separated GPU indices, one instance each (e.g. 0,1); default: one instance")
    up.add_argument("--port", type=int, help="first port (one per instance, counting up); default: free ports")
    up.add_argument("--python", help="interpreter for ComfyUI (default: PATH/.venv or PATH/venv, else this one)")
    up.add_argument("--extra-arg", action="append", default=[], metavar="ARG",
                    help="pass ARG to every main.py (repeat; e.g. --extra-arg=--cpu)")
    up.add_argument("--ready-timeout", type=float, default=600.0, help="seconds to wait for each instance (600)")
    up.add_argument("--no-warmup", action="store_true", help="skip the warm-up prompt")
    up.set_defaults(handler=_reported(cmd_up))

    doctor = actions.add_parser("doctor", help="what an instance lacks to run a recipe",
                                description="Compile every ComfyUI-placed node of a recipe for each instance and "
                                            "report missing node classes, model files and keys. Sends no prompt.")
    doctor.add_argument("recipe", help="recipe JSON file, or the name of a bundled template")
    doctor.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE", help="set a parameter")
    doctor.add_argument("--comfy", action="append", default=[], metavar="URL",
                        help="instance to check (repeat; default: those `reelgraph comfy up` runs)")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(handler=_reported(cmd_doctor))

    provision = actions.add_parser("provision", help="install ComfyUI, custom nodes and models from the manifest",
                                   description="Install the pinned ComfyUI, custom-node packs and model files "
                                               "(resumed downloads, checked sizes and sha256) into a folder.")
    provision.add_argument("--path", type=Path, required=True, help="the ComfyUI checkout to create or complete")
    provision.add_argument("--manifest", type=Path, help="manifest file (default: the bundled manifest.toml)")
    provision.add_argument("--model", action="append", default=[], metavar="NAME",
                           help="model group to download (e.g. wan2.1, wan2.2-5b, hunyuan, sdxl, rife, core) or a "
                                "file name; repeat")
    provision.add_argument("--all-models", action="store_true", help="download every model file in the manifest")
    provision.add_argument("--no-deps", action="store_true", help="skip pip install of requirements")
    provision.add_argument("--python", help="interpreter whose pip installs requirements (default as for `up`)")
    provision.add_argument("--dry-run", action="store_true", help="only print what would be done")
    provision.set_defaults(handler=_reported(cmd_provision))


EXIT_INVALID = 2


class CommandError(Exception):
    """Bad command-line input for a ``comfy`` action: reported in one line, exit status 2."""


def _usage(message: str) -> Exception:
    return CommandError(message)


def _reported(handler: Any) -> Any:
    """Report a ``CommandError`` (and the CLI's own usage errors) the way ``reelgraph`` does.

    Needed because ``python -m reelgraph.cli`` runs the CLI as ``__main__``: its ``UsageError`` is
    not the class this module would import, so it could not catch ours."""

    def run(args: argparse.Namespace) -> int:
        from ..cli import UsageError

        try:
            return int(handler(args))
        except (CommandError, UsageError) as exc:
            print(f"reelgraph: error: {exc}", file=sys.stderr)
            return EXIT_INVALID

    return run


def _home(args: argparse.Namespace) -> Path:
    from ..engine import default_home

    return Path(args.home) if args.home else default_home()


def state_path(home: Path) -> Path:
    return home / "comfy" / STATE_FILE


# ---------------------------------------------------------------------------------------------
# up


def cmd_up(args: argparse.Namespace) -> int:
    from .instances import InstanceStartError, ManagedInstance, Supervisor

    path = args.path.resolve()
    if not (path / "main.py").is_file():
        raise _usage(f"--path {args.path}: no main.py there (a ComfyUI checkout; `reelgraph comfy provision` makes one)")
    gpus: list[str | None] = [g.strip() for g in args.gpus.split(",")] if args.gpus else [None]
    if any(not g for g in gpus):
        raise _usage(f"--gpus takes comma-separated indices, got {args.gpus!r}")
    home = _home(args)
    state = state_path(home)
    names = [f"gpu{g}" if g is not None else "comfy0" for g in gpus]
    instances = [ManagedInstance(path, name, home / "comfy", gpu=gpu, python=args.python,
                                 port=args.port + index if args.port else None, extra_args=args.extra_arg,
                                 ready_timeout=args.ready_timeout)
                 for index, (name, gpu) in enumerate(zip(names, gpus))]

    def say(message: str) -> None:
        print(f"comfy: {message}", file=sys.stderr, flush=True)

    supervisor = Supervisor(instances, warmup=not args.no_warmup, notify=say)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        say(f"starting {len(instances)} ComfyUI instance(s) from {path}")
        try:
            supervisor.start()
        except InstanceStartError as exc:
            say(str(exc))
            return 1
        for instance in instances:
            warm = supervisor.warm_seconds.get(instance.name)
            print(f"{instance.name}: {instance.url} ready (pid {instance.pid}"
                  f"{', GPU ' + instance.gpu if instance.gpu is not None else ''}"
                  f"{f', warm-up {warm:.2f} s' if warm is not None else ''}; log {instance.log})", flush=True)
        _write_state(state, instances)
        say(f"supervising; instances listed in {state}; Ctrl-C stops them")
        while not stop.wait(1.0):
            _write_state(state, instances)  # pids change on restarts
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        supervisor.stop()
        state.unlink(missing_ok=True)
    say("stopped")
    return 0


def _write_state(state: Path, instances: list[Any]) -> None:
    document = {"supervisor_pid": os.getpid(), "written": time.time(),
                "instances": [{"name": i.name, "url": i.url, "gpu": i.gpu, "pid": i.pid, "path": str(i.path),
                               "restarts": i.restarts} for i in instances]}
    state.parent.mkdir(parents=True, exist_ok=True)
    staging = state.with_name(f".{state.name}.{os.getpid()}.tmp")
    staging.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, state)


def listed_instances(home: Path) -> tuple[list[tuple[str, str]], str]:
    """(name, url) pairs from ``comfy up``'s state file, and why there are none."""
    state = state_path(home)
    try:
        document = json.loads(state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [], ""
    except (OSError, ValueError) as exc:
        return [], f"{state} is unreadable ({exc})"
    pid = int(document.get("supervisor_pid", 0))
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return [], f"{state} is left over from a `reelgraph comfy up` (pid {pid}) that is no longer running"
    return [(str(i["name"]), str(i["url"])) for i in document.get("instances", [])], ""


# ---------------------------------------------------------------------------------------------
# the pool of `reelgraph run`


def pool_for_run(urls: list[str], home: Path) -> ComfyPool | None:
    """``--comfy URL`` instances, else healthy ones from ``comfy up``'s state file, else none."""
    from ..engine.runner import RunConfigError
    from .errors import ComfyError

    # .pool loads requests and websocket-client: imported only when there is an instance to reach
    if urls:
        from .pool import ComfyPool

        try:
            return ComfyPool.connect(urls)
        except ComfyError as exc:
            raise RunConfigError(f"--comfy: {exc}") from None
    listed, why = listed_instances(home)
    if why:
        print(f"reelgraph: note: {why}; running without ComfyUI", file=sys.stderr)
    if not listed:
        _note_recorded(home)
        return None
    from .pool import ComfyPool

    try:
        pool = ComfyPool.connect([url for _, url in listed], names=[name for name, _ in listed], ready_timeout=2.0)
    except ComfyError as exc:
        print(f"reelgraph: note: the instances of `reelgraph comfy up` do not answer ({exc}); running without ComfyUI",
              file=sys.stderr)
        _note_recorded(home)
        return None
    ready = ", ".join(f"{i.name} ({i.url})" for i in pool.instances if i.healthy)
    print(f"reelgraph: ComfyUI instances from `reelgraph comfy up`: {ready}", file=sys.stderr)
    return pool


def _note_recorded(home: Path) -> None:
    from .seen import recorded_note

    if note := recorded_note(home):
        print(f"reelgraph: note: {note}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# doctor


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..cli import _bind
    from ..graphs.model import Link
    from ..nodes.providers.http import ProviderError
    from ..nodes.registry import is_comfy_type
    from .client import ComfyClient
    from .errors import ComfyError, CompileError
    from .placement import job_for_node
    from .pool import BuildTarget
    from .provision import load_manifest

    bound = _bind(args)
    targets = [(url, urlsplit(url).netloc or url) for url in args.comfy] or \
        [(url, name) for name, url in listed_instances(_home(args))[0]]
    if not targets:
        raise _usage("no instance to check: pass --comfy URL, or start them with `reelgraph comfy up`")
    manifest = load_manifest()
    report: list[dict[str, Any]] = []
    lacking = False
    for url, name in targets:
        client = ComfyClient(url, instance=name, timeout=30)
        entry: dict[str, Any] = {"instance": name, "url": url, "nodes": []}
        report.append(entry)
        try:
            info = client.object_info()
            entry["comfyui_version"] = (client.system_stats().get("system") or {}).get("comfyui_version")
        except ComfyError as exc:
            entry["error"] = str(exc)
            lacking = True
            continue
        for node_id, node in bound.nodes.items():
            literals = {k: v for k, v in node.inputs.items() if not isinstance(v, Link)}
            row: dict[str, Any] = {"node": node_id, "type": node.spec.type, "lacks": []}
            if is_comfy_type(node.spec.type):
                cls = node.spec.type.split(":", 1)[1]
                if cls not in info:
                    row["lacks"].append(f"node class {cls}")
                entry["nodes"].append(row)
                continue
            try:
                job = job_for_node(node.spec.type, literals, node_id)
            except ProviderError as exc:  # e.g. the Comfy.org key for Kling
                row["lacks"].append(str(exc))
                entry["nodes"].append(row)
                continue
            except Exception as exc:  # noqa: BLE001 - a bad literal is the recipe's problem: show it, go on
                row["lacks"].append(str(exc))
                entry["nodes"].append(row)
                continue
            if job is None:
                continue
            row["family"] = job.family
            try:
                job.build(BuildTarget(info, name, {"image": "reelgraph/doctor/image.png",
                                                   "video": "reelgraph/doctor/video.mp4"}, "reelgraph/doctor/out"))
            except CompileError as exc:
                row["lacks"], hint = _lacks([getattr(e, "message", str(e)) for e in exc.errors] or [str(exc)],
                                            job.family, manifest)
                if hint:
                    row["hint"] = hint
            entry["nodes"].append(row)
        lacking = lacking or any(row["lacks"] for row in entry["nodes"])
    if args.json:
        print(json.dumps({"ok": not lacking, "instances": report}, indent=2))
    else:
        for entry in report:
            version = f" (ComfyUI {entry['comfyui_version']})" if entry.get("comfyui_version") else ""
            where = entry["url"] if entry["instance"] in entry["url"] else f"{entry['instance']} {entry['url']}"
            print(f"{where}{version}:")
            if "error" in entry:
                print(f"  not reachable: {entry['error']}")
            if not entry["nodes"] and "error" not in entry:
                print("  nothing in this recipe runs on ComfyUI")
            for row in entry["nodes"]:
                status = "ok" if not row["lacks"] else "lacks " + "; ".join(row["lacks"])
                print(f"  {row['node']} ({row['type']}{', ' + row['family'] if row.get('family') else ''}): {status}")
                if row.get("hint"):
                    print(f"    {row['hint']}")
    return 1 if lacking else 0


def _lacks(messages: list[str], family: str, manifest: Any) -> tuple[list[str], str]:
    """Short items for what a compile refusal names, and how to get the model files."""
    from .provision import unpinned_note

    items: list[str] = []
    groups: list[str] = []
    known = []
    for message in messages:
        file = re.match(r"model file (\S+) is not on instance", message)
        model = manifest.for_file(file.group(1)) if file else None
        if file and model is not None:
            items.append(f"model file {model.file} ({model.dir})")
            groups.append(family if family in model.groups else model.groups[0])
            known.append(model)
        elif file:
            items.append(f"model file {file.group(1)}")
        else:
            items.append(re.sub(r" is not on instance \S+", "", message))
    hint = ""
    if groups:
        wanted = " ".join(f"--model {g}" for g in dict.fromkeys(groups))
        hint = f"get {'it' if len(groups) == 1 else 'them'} with `reelgraph comfy provision --path COMFYUI_DIR {wanted}`"
        if note := unpinned_note(known):
            hint += f"; {note}"
    return items, hint


# ---------------------------------------------------------------------------------------------
# provision


def cmd_provision(args: argparse.Namespace) -> int:
    from .instances import comfy_python
    from .provision import ProvisionError, load_manifest, plan, provision, select_models

    try:
        manifest = load_manifest(args.manifest)
        models = select_models(manifest, args.model, args.all_models)
    except ProvisionError as exc:
        raise _usage(str(exc)) from None
    path = args.path.resolve()
    python = args.python or comfy_python(path)
    if not models:
        print(f"note: no model files chosen (--model NAME or --all-models); groups: {', '.join(manifest.groups())}",
              file=sys.stderr)
    if args.dry_run:
        for step in plan(manifest, path, models, python=python, deps=not args.no_deps):
            print(step)
        return 0
    try:
        provision(manifest, path, models, python=python, deps=not args.no_deps, log=lambda line: print(line, flush=True))
    except ProvisionError as exc:
        print(f"reelgraph: provision failed: {exc}", file=sys.stderr)
        return 1
    print(f"provisioned {path}")
    return 0
