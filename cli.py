"""The ``reelgraph`` command. Exit codes: 0 ok, 1 run failed, 2 invalid input."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK, EXIT_RUN_FAILED, EXIT_INVALID = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input that is not a recipe error."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from .engine.runner import RunConfigError
    from .graphs.errors import RecipeInvalid

    try:
        return int(args.handler(args))
    except RecipeInvalid as exc:
        _print_errors(exc, getattr(args, "json", False))
        return EXIT_INVALID
    except (UsageError, RunConfigError) as exc:
        print(f"reelgraph: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("\nreelgraph: interrupted; finished nodes are cached, rerun to resume", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reelgraph", description="Short AI videos from recipe graphs.")
    parser.add_argument("--home", type=Path, help="state directory (default: $REELGRAPH_HOME or ~/.cache/reelgraph)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def recipe_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("recipe", help="recipe JSON file, or the name of a bundled template")
        sub.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE", help="set a parameter")
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        return sub

    sub = recipe_command("validate", "check a recipe and its params; report every error")
    sub.set_defaults(handler=_cmd_validate)

    sub = recipe_command("plan", "show what a run would execute, what is cached, and why")
    sub.add_argument("--force", action="append", default=[], metavar="NODE")
    sub.add_argument("--output", action="append", metavar="NAME", help="only what this output needs")
    sub.add_argument(
        "--comfy", action="append", default=[], metavar="URL",
        help="ComfyUI instance whose versions key ComfyUI-placed nodes, as for run (default: `reelgraph comfy up`'s)",
    )
    sub.set_defaults(handler=_cmd_plan)

    sub = recipe_command("run", "run a recipe; only dirty nodes execute")
    sub.add_argument("--out", type=Path, default=Path("out"), help="folder for the outputs (default: ./out)")
    sub.add_argument("--report", type=Path, help="write a JSON report of the run here")
    sub.add_argument("--force", action="append", default=[], metavar="NODE", help="execute NODE even if cached")
    sub.add_argument(
        "--regenerate", action="append", default=[], metavar="NODE",
        help="new result for a non-deterministic NODE (bumps its nonce in the recipe file)",
    )
    sub.add_argument("--output", action="append", metavar="NAME", help="only produce this output")
    sub.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2), help="parallel executions")
    sub.add_argument("--limit", action="append", default=[], metavar="RESOURCE=N", help="e.g. ffmpeg=1")
    sub.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    sub.add_argument(
        "--comfy", action="append", default=[], metavar="URL",
        help="ComfyUI instance for ComfyUI-placed nodes (repeat; default: those `reelgraph comfy up` runs)",
    )
    sub.add_argument(
        "--priority", type=int, default=0, metavar="N",
        help="ComfyUI priority of this run's prompts: higher goes first, also in ComfyUI's own queue (default 0)",
    )
    sub.set_defaults(handler=_cmd_run)

    from .comfy_workflows.cli import add_arguments as add_comfy_arguments

    sub = commands.add_parser("comfy", help="ComfyUI instances: start and supervise, provision, check a recipe")
    add_comfy_arguments(sub)

    sub = commands.add_parser("cache", help="inspect or collect the cache")
    cache = sub.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    ls = cache.add_parser("ls", help="list cached node results")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_cmd_cache_ls)
    gc = cache.add_parser("gc", help="remove results that recent runs do not use")
    gc.add_argument("--keep-runs", type=int, default=20, help="keep everything the last N runs used (default 20)")
    gc.add_argument("--grace-hours", type=float, default=24.0, help="never remove anything younger (default 24)")
    gc.add_argument("--dry-run", action="store_true")
    gc.set_defaults(handler=_cmd_cache_gc)

    sub = commands.add_parser("export", help="write a recipe as a ComfyUI workflow")
    sub.add_argument("recipe")
    sub.add_argument("--format", choices=["comfy-api", "comfy-ui"], default="comfy-api")
    sub.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE")
    sub.add_argument("-o", "--output-file", type=Path, help="default: standard output")
    sub.add_argument("--object-info", help="saved /object_info JSON or a ComfyUI URL (orders stock nodes' widgets)")
    sub.add_argument("--expand-comfy", action="store_true",
                     help="comfy-ui: write nodes that run on ComfyUI as subgraphs of the stock nodes they compile to "
                          "on that --object-info")
    sub.set_defaults(handler=_cmd_export)

    sub = commands.add_parser(
        "import", help="turn a ComfyUI workflow (UI or API format, or a PNG/MP4 that carries one) into a recipe"
    )
    sub.add_argument("workflow", type=Path)
    sub.add_argument("--name", help="recipe name (default: the file name)")
    sub.add_argument("--object-info", help="saved /object_info JSON or a ComfyUI URL (maps stock nodes' widgets)")
    sub.add_argument("-o", "--output-file", type=Path, help="default: standard output")
    sub.set_defaults(handler=_cmd_import)

    sub = commands.add_parser("schema", help="print the recipe JSON Schema")
    sub.set_defaults(handler=_cmd_schema)

    sub = commands.add_parser("nodes", help="list node types")
    sub.add_argument("--json", action="store_true")
    sub.set_defaults(handler=_cmd_nodes)

    sub = commands.add_parser("runs", help="list recent runs, or show one run's executions")
    sub.add_argument("run_id", nargs="?")
    sub.add_argument("--limit", type=int, default=20)
    sub.set_defaults(handler=_cmd_runs)

    sub = commands.add_parser("serve", help="run the Engine API server (HTTP, under /v1)")
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others need tokens)")
    sub.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    sub.add_argument("--workers", type=int, default=2, help="runs executed at once (default 2)")
    sub.add_argument("--token-file", type=Path, help="bearer tokens, one per line (also: $REELGRAPH_API_TOKENS)")
    sub.add_argument("--comfy", action="append", default=[], metavar="URL",
                     help="a ComfyUI instance for ComfyUI-placed nodes (repeat for more; default: `reelgraph comfy up`'s)")
    sub.set_defaults(handler=_cmd_serve)
    return parser


# ---- helpers ------------------------------------------------------------------------------
def _resolve_recipe_path(text: str) -> Path:
    from .graphs.templates import template_names, template_path

    path = Path(text)
    if path.is_file():
        return path
    template = template_path(text)
    if template is not None:
        return template
    raise UsageError(f"{text!r} is neither a recipe file nor a template (templates: {', '.join(template_names())})")


def _parse_params(pairs: list[str], recipe: Any) -> dict[str, Any]:
    from .graphs.errors import GraphError, RecipeInvalid, json_path

    values: dict[str, Any] = {}
    errors = []
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--param takes NAME=VALUE, got {pair!r}")
        spec = recipe.params.get(name)
        if spec is None:
            values[name] = text  # reported as an unknown param by validation, with the others
            continue
        try:
            values[name] = _convert(text, spec.type)
        except ValueError as exc:
            errors.append(GraphError("bad_param_value", json_path("params", name), f"value {text!r}: {exc}"))
    if errors:
        raise RecipeInvalid(errors)
    return values


def _convert(text: str, value_type: str) -> Any:
    if value_type == "integer":
        return int(text)
    if value_type == "number":
        return float(text)
    if value_type == "boolean":
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if value_type == "json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not JSON ({exc})") from None
    return text


def _bind(args: argparse.Namespace) -> Any:
    from .graphs.validate import bind_recipe, parse_recipe
    from .nodes.registry import default_registry

    path = _resolve_recipe_path(args.recipe)
    recipe = parse_recipe(path.read_bytes())
    if recipe.name is None:
        recipe = recipe.model_copy(update={"name": path.stem})
    params = _parse_params(args.param, recipe)
    bound = bind_recipe(recipe, default_registry(), params, base_dir=path.parent.resolve())
    from .engine.comfy_groups import fuse_comfy_groups

    fuse_comfy_groups(bound)  # wiring ComfyUI groups cannot honour is a recipe error, reported at once
    return bound


def _engine(args: argparse.Namespace) -> Any:
    from .engine import Engine

    return Engine(args.home)


def _print_errors(exc: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"valid": False, "errors": [e.to_json() for e in exc.errors]}, indent=2))
        return
    count = len(exc.errors)
    print(f"reelgraph: the recipe has {count} error{'s' if count != 1 else ''}:", file=sys.stderr)
    for error in exc.errors:
        print(f"  - {error}", file=sys.stderr)


def _write_or_print(document: Any, target: Path | None) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if target is None:
        sys.stdout.write(text)
    else:
        target.write_text(text, encoding="utf-8")


def _fail(message: str) -> NoReturn:
    raise UsageError(message)


# ---- commands -----------------------------------------------------------------------------
def _cmd_validate(args: argparse.Namespace) -> int:
    bound = _bind(args)
    if args.json:
        print(json.dumps({"valid": True, "nodes": len(bound.nodes)}))
    else:
        print(f"ok: {len(bound.nodes)} nodes, {len(bound.recipe.outputs)} outputs")
    return EXIT_OK


def _check_node_ids(bound: Any, ids: list[str], flag: str) -> None:
    unknown = [node for node in ids if node not in bound.nodes]
    if unknown:
        _fail(f"{flag}: no node {', '.join(map(repr, unknown))} in the recipe")


def _check_outputs(bound: Any, names: list[str] | None) -> tuple[str, ...] | None:
    if names is None:
        return None
    unknown = [name for name in names if name not in bound.outputs]
    if unknown:
        _fail(f"--output: the recipe has no output {', '.join(map(repr, unknown))} (outputs: {', '.join(bound.outputs)})")
    return tuple(names)


def _cmd_plan(args: argparse.Namespace) -> int:
    bound = _bind(args)
    _check_node_ids(bound, args.force, "--force")
    engine = _engine(args)
    from .comfy_workflows.cli import pool_for_run

    comfy = pool_for_run(args.comfy, engine.home)  # ComfyUI-placed keys hold the instances' versions
    try:
        entries = engine.plan(bound, _check_outputs(bound, args.output), frozenset(args.force), comfy)
    finally:
        if comfy is not None:
            comfy.close()
    if args.json:
        print(json.dumps([entry.to_json() for entry in entries], indent=2))
        return EXIT_OK
    from .engine.cost import summary

    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.status] = counts.get(entry.status, 0) + 1
        element = "" if entry.element is None else f"[{entry.element}]"
        price = _usd(entry.estimated_cost) if entry.status != "cached" and entry.estimated_cost != 0.0 else ""
        print(f"{entry.status:7} {entry.node}{element} ({entry.type}): {entry.reason}{price and f'  [{price}]'}")
    print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing to do")
    cost = summary((e.status, e.estimated_cost, e.saved) for e in entries)
    unpriced = f", {cost['unpriced']} step(s) not priced" if cost["unpriced"] else ""
    saved = f", {_usd(cost['saved'])} saved by the cache" if cost["saved"] else ""
    print(f"estimated cost: {_usd(cost['total'])}{unpriced}{saved} (prices: providers.toml)")
    return EXIT_OK


def _usd(amount: float | None) -> str:
    if amount is None:
        return "cost unknown"
    return f"${amount:.4f}" if amount >= 0.0001 or amount == 0 else f"${amount:.6f}"


def _cmd_run(args: argparse.Namespace) -> int:
    from .engine import RunOptions
    from .engine.outputs import export_outputs

    path = _resolve_recipe_path(args.recipe)
    if args.regenerate:
        _regenerate(path, args.regenerate)
    bound = _bind(args)
    _check_node_ids(bound, args.force, "--force")
    limits = {}
    for pair in args.limit:
        name, _, amount = pair.partition("=")
        if not name or not amount.isdigit() or int(amount) < 1:
            _fail(f"--limit takes RESOURCE=N with N >= 1, got {pair!r}")
        limits[name] = int(amount)
    if args.workers < 1:
        _fail("--workers must be at least 1")
    progress = None if args.quiet else Progress(sys.stderr)
    engine = _engine(args)
    from .comfy_workflows.cli import pool_for_run

    comfy = pool_for_run(args.comfy, engine.home)
    options = RunOptions(
        workers=max(args.workers, comfy.min_workers() + 2) if comfy else args.workers,  # keep every GPU queue full
        limits=limits,
        force=frozenset(args.force),
        outputs=_check_outputs(bound, args.output),
        on_event=progress.on_event if progress else None,
        comfy=comfy.with_priority(args.priority) if comfy else None,
    )
    try:
        result = engine.run(bound, options)
    finally:
        if comfy is not None:
            comfy.close()
    written = export_outputs(result.outputs, args.out, engine.store)
    counts = {status: sum(1 for e in result.executions if e.status == status) for status in ("executed", "cached", "failed", "skipped")}
    if args.report:
        report = {
            "run_id": result.run_id,
            "recipe": bound.recipe.name,
            "status": result.status,
            "seconds": round(result.seconds, 6),
            "counts": counts,
            "outputs": written,
            "executions": [e.report() for e in result.executions],
        }
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    print(f"run {result.run_id} {result.status} in {result.seconds:.2f}s ({summary})", file=sys.stderr)
    for failure in result.failures:
        element = "" if failure.element is None else f"[{failure.element}]"
        error = failure.error or {}
        print(f"  failed: node {failure.node}{element} ({failure.type}), step {error.get('step')}: {error.get('cause')}", file=sys.stderr)
    for name, target in written.items():
        shown = target if isinstance(target, str) else f"{len(target)} files in {args.out / name}"
        print(f"{name}: {shown}")
    return EXIT_OK if result.status == "succeeded" else EXIT_RUN_FAILED


def _regenerate(path: Path, node_ids: list[str]) -> None:
    """Bump the nonce of each node in the recipe file, so the new result stays pinned afterwards."""
    from .graphs.templates import TEMPLATE_DIR
    from .graphs.validate import parse_recipe
    from .nodes.registry import default_registry

    if path.resolve().is_relative_to(TEMPLATE_DIR.resolve()):
        _fail("--regenerate records a new nonce in the recipe file; copy the template to a file of your own first")
    recipe = parse_recipe(path.read_bytes())
    for node_id in node_ids:
        spec = recipe.nodes.get(node_id)
        if spec is None:
            _fail(f"--regenerate: no node {node_id!r} in the recipe")
        node_type = default_registry().get(spec.type)
        if node_type is not None and node_type.deterministic:
            _fail(f"--regenerate: node {node_id!r} ({spec.type}) is deterministic; use --force to re-execute it")
    document = json.loads(path.read_bytes())
    for node_id in node_ids:
        node = document["nodes"][node_id]
        node["nonce"] = int(node.get("nonce", 0)) + 1
        print(f"regenerate: node {node_id!r} nonce is now {node['nonce']} (recorded in {path})", file=sys.stderr)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(staging, path)


def _cmd_cache_ls(args: argparse.Namespace) -> int:
    from .engine.gc import list_actions

    entries = list_actions(_engine(args).store)
    if args.json:
        print(json.dumps([entry.__dict__ for entry in entries], indent=2))
        return EXIT_OK
    for entry in entries:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.created))
        print(f"{entry.key[7:19]}  {stamp}  {entry.size:>12,d} B  {entry.node_type}")
    print(f"{len(entries)} cached results, {sum(e.size for e in entries):,d} bytes referenced")
    return EXIT_OK


def _cmd_cache_gc(args: argparse.Namespace) -> int:
    from .engine.gc import collect_garbage

    if args.keep_runs < 0 or args.grace_hours < 0:
        _fail("--keep-runs and --grace-hours must not be negative")
    engine = _engine(args)
    report = collect_garbage(engine.store, engine.records, args.keep_runs, args.grace_hours * 3600, args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(
        f"{verb} {report.actions_removed} cached results and {report.blobs_removed} blobs"
        f" ({report.bytes_freed:,d} bytes); kept {report.actions_kept} results"
    )
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from .graphs.comfy_api import recipe_to_api
    from .graphs.validate import parse_recipe

    path = _resolve_recipe_path(args.recipe)
    recipe = parse_recipe(path.read_bytes())
    params = _parse_params(args.param, recipe)
    if args.format == "comfy-ui":
        from .graphs.comfy_ui import OBJECT_INFO_ENV, export_ui, load_object_info
        from .graphs.model import ParamSpec
        from .nodes.registry import default_registry

        if recipe.name is None:
            recipe = recipe.model_copy(update={"name": path.stem})
        unknown = sorted(set(params) - set(recipe.params))
        if unknown:
            _fail(f"--param: the recipe has no parameter {', '.join(map(repr, unknown))}")
        # given values become the defaults the parameter nodes show
        updated = {name: ParamSpec.model_validate({**spec.model_dump(exclude_unset=True), "default": params[name]})
                   if name in params else spec for name, spec in recipe.params.items()}
        recipe = recipe.model_copy(update={"params": updated})
        info = load_object_info(args.object_info or os.environ.get(OBJECT_INFO_ENV))
        _write_or_print(export_ui(recipe, info, default_registry(), expand_comfy=args.expand_comfy), args.output_file)
        return EXIT_OK
    if args.expand_comfy:
        _fail("--expand-comfy applies to --format comfy-ui")
    _write_or_print(recipe_to_api(recipe, params), args.output_file)
    return EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    from .graphs.comfy_media import is_media, read_embedded_workflow
    from .graphs.comfy_ui import (
        OBJECT_INFO_ENV,
        import_workflow,
        is_ui_format,
        load_object_info,
    )
    from .graphs.errors import GraphError, RecipeInvalid
    from .nodes.registry import default_registry

    if is_media(args.workflow):
        _, document = read_embedded_workflow(args.workflow)
    else:
        try:
            document = json.loads(args.workflow.read_bytes())
        except OSError as exc:
            _fail(f"cannot read {args.workflow}: {exc.strerror}")
        except ValueError as exc:
            raise RecipeInvalid([GraphError("bad_json", "", f"not valid JSON: {exc}")]) from None
    if not isinstance(document, dict):
        raise RecipeInvalid([GraphError("bad_structure", "", "a ComfyUI workflow is a JSON object")])
    source = args.object_info or os.environ.get(OBJECT_INFO_ENV)
    info = load_object_info(source) if is_ui_format(document) else None
    recipe = import_workflow(document, info, default_registry(), name=args.name or args.workflow.stem)
    if args.name:  # an explicit name wins over the one an exported workflow carries
        recipe = recipe.model_copy(update={"name": args.name})
    _write_or_print(recipe.to_json(), args.output_file)
    return EXIT_OK


def _cmd_schema(args: argparse.Namespace) -> int:
    from .graphs.model import recipe_json_schema

    print(json.dumps(recipe_json_schema(), indent=2))
    return EXIT_OK


def _cmd_nodes(args: argparse.Namespace) -> int:
    from .nodes.registry import default_registry

    registry = default_registry()
    types = [registry.get(type_id) for type_id in registry.ids()]
    if args.json:
        print(json.dumps([_describe(t) for t in types if t], indent=2))
        return EXIT_OK
    for node_type in types:
        assert node_type is not None
        ins = ", ".join(f"{p.name}{'?' if p.optional else ''}: {'list ' if p.is_list else ''}{p.type}" for p in node_type.inputs)
        outs = ", ".join(f"{p.name}: {'list ' if p.is_list else ''}{p.type}" for p in node_type.outputs)
        print(f"{node_type.id} v{node_type.impl_version} ({node_type.placement}) ({ins}) -> ({outs})")
    return EXIT_OK


def _describe(node_type: Any) -> dict[str, Any]:
    def port(p: Any) -> dict[str, Any]:
        return {"name": p.name, "type": p.type, "list": p.is_list, "optional": p.optional, "default": p.default, "description": p.description}

    return {
        "id": node_type.id,
        "impl_version": node_type.impl_version,
        "deterministic": node_type.deterministic,
        "placement": node_type.placement,
        "category": node_type.category,
        "description": node_type.description,
        "inputs": [port(p) for p in node_type.inputs],
        "outputs": [port(p) for p in node_type.outputs],
    }


def _cmd_runs(args: argparse.Namespace) -> int:
    engine = _engine(args)
    if args.run_id is None:
        for row in engine.records.runs(args.limit):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.started))
            took = f"{row.finished - row.started:.2f}s" if row.finished else "-"
            print(f"{row.id}  {stamp}  {row.status:11} {took:>9}  {row.recipe_name}")
        return EXIT_OK
    executions = engine.records.executions(args.run_id)
    if not executions:
        _fail(f"no run {args.run_id!r}")
    for e in executions:
        element = "" if e.element is None else f"[{e.element}]"
        cause = f"  {e.error['step']}: {e.error['cause']}" if e.error else ""
        print(f"{e.status:8} {e.seconds:8.3f}s  {e.node}{element} ({e.type}){cause}")
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from .server.main import serve

    return serve(args.home, args.host, args.port, args.workers, args.token_file, tuple(args.comfy))


class Progress:
    """One updating status line on a terminal; one line per finished execution otherwise."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.total = 0
        self.done = 0
        self.running: set[str] = set()

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        label = event.get("node", "")
        if event.get("element") is not None:
            label += f"[{event['element']}]"
        if kind == "node_started":
            self.running.add(label)
        elif kind == "node_finished":
            self.running.discard(label)
            self.done += 1
            if not self.tty and event["status"] != "cached":
                self.stream.write(f"{event['status']:8} {label} {event['seconds']:.2f}s\n")
        elif kind == "node_warning":
            clear_line = "\r\033[K" if self.tty else ""
            self.stream.write(f"{clear_line}warning: {label}: {event['message']}\n")
        elif kind == "run_finished" and self.tty:
            self.stream.write("\r\033[K")
        if self.tty and kind in ("node_started", "node_finished"):
            running = ", ".join(sorted(self.running)[:3]) + (" ..." if len(self.running) > 3 else "")
            self.stream.write(f"\r\033[K[{self.done} done] running: {running}"[:120])
        self.stream.flush()


if __name__ == "__main__":
    sys.exit(main())
