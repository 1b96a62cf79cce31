"""Raw ComfyUI nodes in recipes: each connected group of ``comfy:<class_type>`` nodes runs as ONE prompt.

``reelgraph import`` turns a ComfyUI workflow into ``comfy:*`` nodes linked by slot number. Before
the runner (or the planner) sees a recipe, :func:`fuse_comfy_groups` rewrites every connected
group of them into a single node of a type built on the fly (``comfy:prompt``):

* **inputs**: ``prompt``, the group as a canonical literal (class types, widget values, nonces and
  the links between members, with members renumbered in an order derived from their content),
  and ``in0``, ``in1``, ... for the values that enter the group from reelgraph nodes (a file is
  uploaded to the instance and its name put in the input; a scalar is put in as is; a list fans
  the group out, one prompt per element, as anywhere else). The cache key therefore covers every
  widget value and the graph's shape but never node ids or titles: renaming nodes reruns nothing.
* **outputs**: ``out0``, ``out1``, ... the files the group's output nodes save, in the same
  canonical order. A recipe names them by linking **slot 0 of an output node**
  (``{"link": ["9", 0]}``: the images SaveImage node 9 saved) from a recipe output or a reelgraph
  node's input. Savers of images give a list (one file per image of the batch); savers of video
  and audio one file. Any other ComfyUI node linked this way is taken to save files of the type
  its consumers take, which the instance's ``/object_info`` must confirm before submission.

The group is submitted through the run's :class:`~reelgraph.comfy_workflows.pool.ComfyPool`
(``RunOptions.comfy``, ``reelgraph run --comfy URL``) after the same ComfyUI validation the
compiler applies (classes, required inputs, combos, model files, min/max), against that
instance's ``/object_info``; ``node_errors`` and ``execution_error`` name the member node.
Without a pool a group that is not cached fails with the message a lone ComfyUI node always had.

The group counts as deterministic: a ComfyUI sampler with a fixed seed is not bit-exact across
GPUs, but gives the same picture for every practical purpose, so its result is cached like any
other. ``reelgraph run --regenerate NODE`` on any member bumps that member's nonce, which enters
the canonical prompt, so the group runs again; ``--force NODE`` on any member forces the group.

Run records, events, reports and ``reelgraph plan`` show the group under **each member's own
node id** (with its ``comfy:<class_type>``), sharing one cache key. When ComfyUI blames members
(``node_errors``, ``execution_error``), those are ``failed`` with the mapped message and the other
members ``skipped``; any other failure (instance lost, timeout) fails every member.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import networkx as nx

from ..graphs.comfy_api import SAVERS
from ..graphs.errors import GraphError, RecipeInvalid, json_path
from ..graphs.model import Link, NodeSpec
from ..graphs.validate import BoundNode, BoundRecipe, _types_compatible
from ..nodes.registry import COMFY_TYPE_PREFIX
from ..nodes.types import (
    FILE_TYPES,
    NodeContext,
    NodeFailure,
    NodeType,
    Port,
    ValueType,
)
from .canonical import digest_json
from .records import Execution, RunRecords
from .runner import Event, RunOptions, RunResult, needed_nodes
from .store import ArtifactStore
from .values import ARTIFACT_KEY

if TYPE_CHECKING:
    from ..comfy_workflows.client import ProgressEvent
    from ..comfy_workflows.compiler import CompiledWorkflow
    from ..comfy_workflows.pool import BuildTarget

GROUP_TYPE_ID = COMFY_TYPE_PREFIX + "prompt"  # the reserved prefix: no plugin type can share its keys
NO_BACKEND = "{type} is a ComfyUI node; it runs on a ComfyUI backend, and this engine has none configured"


def _natural(node_id: str) -> tuple[int, int, str]:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


@dataclass(frozen=True)
class _Outlet:
    """A member whose saved files leave the group: its output port and what the files are."""

    member: str
    port: str
    type: ValueType
    is_list: bool


@dataclass
class ComfyGroup:
    """One connected group of ComfyUI nodes and everything needed to run it as one prompt."""

    id: str
    members: tuple[str, ...]
    nodes: Mapping[str, BoundNode]
    entering: dict[str, Link]  # port -> the reelgraph output that enters the group
    outlets: dict[str, _Outlet]  # port -> the output node whose files it carries
    canonical: dict[str, Any]
    store: ArtifactStore | None
    # Failures the run function explained, by the exact message the runner records: which
    # members ComfyUI blamed; written by a worker thread before its future completes.
    blamed: dict[str, set[str]] = field(default_factory=dict)
    no_backend: set[str] = field(default_factory=set)
    _current: threading.local = field(default_factory=threading.local)

    def type_of(self, member: str) -> str:
        return self.nodes[member].spec.type

    def class_of(self, member: str) -> str:
        return self.type_of(member).removeprefix(COMFY_TYPE_PREFIX)

    # ---- the node type ------------------------------------------------------------------------
    def node_type(self) -> NodeType:
        from ..comfy_workflows.keys import group_fingerprint

        inputs = [Port("prompt", "json", description="the group, canonical: the cache key's view of it")]
        # File values arrive as their documents (json), so the upload keeps the file's extension.
        inputs += [Port(name, "json") for name in self.entering]
        outputs = [Port(port, o.type, is_list=o.is_list) for port, o in self.outlets.items()]
        classes = frozenset(self.class_of(m) for m in self.members)
        return NodeType(GROUP_TYPE_ID, tuple(inputs), tuple(outputs), self._run, placement="comfy",
                        description="ComfyUI nodes of a recipe, run as one prompt", category="comfy",
                        fingerprint=group_fingerprint(classes))

    def _run(self, ctx: NodeContext, prompt: Any, **entering: Any) -> dict[str, Any]:
        from ..comfy_workflows.errors import ComfyError
        from ..comfy_workflows.pool import ComfyJob

        del prompt  # it is the key's view; the members themselves are submitted, under their own ids
        label = self.id if ctx.element is None else f"{self.id}[{ctx.element}]"
        if ctx.comfy is None:
            message = f"ComfyUI nodes {label} need a ComfyUI backend, and this engine has none configured"
            self.no_backend.add(message)
            raise NodeFailure(message)
        uploads, values = {}, {}
        for role, doc in entering.items():
            if isinstance(doc, dict) and ARTIFACT_KEY in doc:
                uploads[role] = ctx.path(f"{role}{doc.get('ext') or ''}")
                _place(self._blob(doc[ARTIFACT_KEY]), uploads[role])
            else:
                values[role] = doc
        model_files = sorted({v for m in self.members for v in self.nodes[m].inputs.values() if _is_model_file(v)})
        family = "comfy:" + ("+".join(model_files) or "no-model")  # the pool groups work by the models it loads
        job = ComfyJob(label, lambda target: self.compile(target, values), family, uploads, heavy=bool(model_files))

        def progress(event: ProgressEvent) -> None:
            self._current.member = event.comfy_node if event.comfy_node in self.nodes else None
            if event.kind == "progress" and event.max:
                ctx.progress(event.value / event.max, f"{event.class_type} step {event.value}/{event.max} on ComfyUI")
            elif event.kind == "executing":
                ctx.progress(0.0, f"{event.class_type} on ComfyUI")

        try:
            result = ctx.comfy.run(job, ctx.path("comfy"), cancel=ctx.cancelled, on_progress=progress)
        except ComfyError as exc:
            self.blamed[str(exc)] = {e.recipe_node for e in exc.errors if e.recipe_node in self.nodes}
            raise
        saved: dict[str, list[Any]] = {}
        for output, path in zip(result.outputs, result.files, strict=True):
            saved.setdefault(output.comfy_node, []).append(path)
        returned: dict[str, Any] = {}
        for port, outlet in self.outlets.items():
            files = saved.get(outlet.member, [])
            if outlet.is_list:
                returned[port] = files
            elif len(files) == 1:
                returned[port] = files[0]
            else:
                message = (f"ComfyUI node {outlet.member} ({self.class_of(outlet.member)}) saved {len(files)} files "
                           f"in prompt {result.prompt_id} on {result.instance}; a link to it takes exactly one")
                self.blamed[message] = {outlet.member}
                raise NodeFailure(message)
        return returned

    def _blob(self, digest: str) -> Path:
        if self.store is None:
            raise NodeFailure("the engine gave this group no artifact store to read its input files from")
        return self.store.blob_path(digest)

    def current_member(self) -> str:
        """The member ComfyUI is executing in this thread's prompt (for progress events), else
        the first output node."""
        member: str | None = getattr(self._current, "member", None)
        if member is not None:
            return member
        outlets = list(self.outlets.values())
        return outlets[0].member if outlets else self.members[-1]

    # ---- the prompt ---------------------------------------------------------------------------
    def compile(self, target: BuildTarget, values: Mapping[str, Any]) -> CompiledWorkflow:
        """The group as an API prompt for one instance, checked against its ``/object_info``;
        ``CompileError`` names the member node."""
        from ..comfy_workflows.compiler import COMFY_ORG_KEY_ENV, CompiledWorkflow
        from ..comfy_workflows.errors import (
            CompileError,
            MappedError,
            map_workflow_errors,
            summary,
        )
        from ..comfy_workflows.schema import validate_workflow

        folder = target.prefix.rsplit("/", 1)[0]  # this job's own folder in ComfyUI's output directory
        roles = {(link.node, link.output): role for role, link in self.entering.items()}
        prompt = {member: self._api_node(member, roles, values, target.inputs, folder) for member in self.members}
        node_map = {member: member for member in self.members}
        problems = map_workflow_errors(validate_workflow(prompt, target.info, instance=target.instance), node_map)
        if not problems:
            for outlet in self.outlets.values():
                schema = target.info[self.class_of(outlet.member)]
                if not schema.output_node:
                    problems.append(MappedError(outlet.member, outlet.member, schema.class_type,
                                                "is linked for the files it saves, but it is not an output node on "
                                                f"instance {target.instance}; link slot 0 of a node that saves "
                                                "(SaveImage, SaveVideo, VHS_VideoCombine, SaveAudio, ...)"))
        api_nodes = [m for m in self.members if target.info[self.class_of(m)].api_node]
        key = os.environ.get(COMFY_ORG_KEY_ENV, "").strip()
        if not problems and api_nodes and not key:
            problems = [MappedError(m, m, self.class_of(m), f"is a Comfy.org API node: set the environment variable "
                                                            f"{COMFY_ORG_KEY_ENV} to a Comfy.org API key to run it")
                        for m in api_nodes]
        if problems:
            raise CompileError(summary(problems), problems)
        outputs = [m for m in self.members if target.info[self.class_of(m)].output_node]
        model_files = sorted({v for node in prompt.values() for v in node["inputs"].values() if _is_model_file(v)})
        return CompiledWorkflow(prompt=prompt, node_map=node_map, output_nodes=outputs, model_files=model_files,
                                fragments=[], template_digest=digest_json(self.canonical),
                                extra_data={"api_key_comfy_org": key} if api_nodes else {})

    def _api_node(self, member: str, roles: Mapping[tuple[str, str | int], str], values: Mapping[str, Any],
                  uploaded: Mapping[str, str], folder: str) -> dict[str, Any]:
        node = self.nodes[member]
        inputs: dict[str, Any] = {}
        for name, value in node.inputs.items():
            if isinstance(value, Link) and value.node in self.nodes:
                inputs[name] = [value.node, value.output]
            elif isinstance(value, Link):
                role = roles[(value.node, value.output)]
                inputs[name] = uploaded[role] if role in uploaded else _api_literal(values[role])
            elif name == "filename_prefix" and isinstance(value, str):
                inputs[name] = f"{folder}/{value}"  # per job: outputs of concurrent jobs never mix
            else:
                inputs[name] = value
        return {"class_type": self.class_of(member), "inputs": inputs, **node.spec.meta.get("comfy", {})}

    # ---- what records and events show ----------------------------------------------------------
    def member_outcomes(self, status: str, error: Mapping[str, str] | None) -> list[tuple[str, str, Any]]:
        """(member, status, error) for each member, from the group's status and error."""
        if error is None:
            return [(m, status, None) for m in self.members]
        cause = error.get("cause", "")
        if cause in self.no_backend:
            return [(m, status, {"node": m, "step": "dispatch", "cause": NO_BACKEND.format(type=self.type_of(m))})
                    for m in self.members]
        blamed = self.blamed.get(cause) or set()
        if status != "failed" or not blamed:
            return [(m, status, {**error, "node": m}) for m in self.members]
        names = ", ".join(repr(m) for m in self.members if m in blamed)
        return [(m, "failed", {**error, "node": m}) if m in blamed else
                (m, "skipped", {"node": m, "step": error.get("step", "execute"),
                                "cause": f"not run: node {names} of the same ComfyUI prompt failed"})
                for m in self.members]


def _is_model_file(value: Any) -> bool:
    from ..comfy_workflows.schema import looks_like_model_file

    return looks_like_model_file(value)


def _api_literal(value: Any) -> Any:
    # a list that reads as [node_id, slot] would be taken for a link; ComfyUI unwraps __value__
    return {"__value__": value} if isinstance(value, list) else value


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)  # the blob under a name with its extension, without copying it
    except OSError:
        shutil.copyfile(source, target)


# ---------------------------------------------------------------------------------------------
# the rewrite


@dataclass
class FusedRecipe:
    """A bound recipe with its ComfyUI groups fused, and the way back to member node ids."""

    bound: BoundRecipe
    groups: dict[str, ComfyGroup]

    def force(self, force: frozenset[str]) -> frozenset[str]:
        """``--force`` on a member forces its group."""
        return force | {g.id for g in self.groups.values() if force & set(g.members)}

    def previous(self, key_docs: dict[tuple[str, int | None], Any]) -> dict[tuple[str, int | None], Any]:
        """The last recorded key documents with each group's under its id (recorded under its members)."""
        found = dict(key_docs)
        for group in self.groups.values():
            found.update({(group.id, element): doc for (node, element), doc in key_docs.items()
                          if node == group.members[0]})
        return found

    def member_entries(self, entries: Iterable[Any]) -> list[Any]:
        """Plan entries (dataclasses with ``node``, ``type`` and ``reason``), a group's under each member."""
        found: list[Any] = []
        for entry in entries:
            group = self.groups.get(entry.node)
            if group is None:
                found.append(entry)
                continue
            reason = f"{entry.reason} (one ComfyUI prompt: {group.id})"
            found += [replace(entry, node=m, type=group.type_of(m), reason=reason, **_cost_share(entry, i))
                      for i, m in enumerate(group.members)]
        return found

    def member_executions(self, execution: Execution) -> list[Execution]:
        group = self.groups.get(execution.node)
        if group is None:
            return [execution]
        return [replace(execution, node=m, type=group.type_of(m), status=status, error=error, **_cost_share(execution, i))
                for i, (m, status, error) in enumerate(group.member_outcomes(execution.status, execution.error))]

    def run(self, start: Callable[[BoundRecipe, RunRecords, RunOptions], RunResult], records: RunRecords,
            options: RunOptions) -> RunResult:
        """Run the fused recipe with ``start``; records, events and the result name members."""
        if not self.groups:
            return start(self.bound, records, options)
        sink = options.on_event
        translated = replace(options, force=self.force(options.force),
                             on_event=None if sink is None else lambda e: self._events(e, sink, options))
        result = start(self.bound, cast(RunRecords, _MemberRecords(records, self)), translated)
        result.executions = [m for e in result.executions for m in self.member_executions(e)]
        return result

    def _events(self, event: Event, sink: Callable[[Event], None], options: RunOptions) -> None:
        kind = event["event"]
        if kind == "run_started":
            needed = needed_nodes(self.bound, options.outputs)
            sink({**event, "nodes": sum(len(self.groups[n].members) if n in self.groups else 1 for n in needed)})
            return
        group = self.groups.get(str(event.get("node")))
        if group is None:
            sink(event)
        elif kind == "node_progress":
            sink({**event, "node": group.current_member()})
        elif kind == "node_finished":
            for member, status, error in group.member_outcomes(event["status"], event.get("error")):
                sink({**event, "node": member, "status": status, "error": error})
        else:
            for member in group.members:
                sink({**event, "node": member, **({"type": group.type_of(member)} if "type" in event else {})})


def _cost_share(entry: Any, index: int) -> dict[str, float]:
    """The group's cost fields stay on its first member; the others show 0.0, so totals add up."""
    if index == 0:
        return {}
    return {f.name: 0.0 for f in fields(entry) if f.name in _COST_FIELDS and getattr(entry, f.name) is not None}


_COST_FIELDS = frozenset({"cost", "saved", "estimated_cost"})


class _MemberRecords:
    """The run records, with each group execution written under every member's id."""

    def __init__(self, records: RunRecords, fused: FusedRecipe) -> None:
        self._records = records
        self._fused = fused

    def record(self, run_id: str, executions: Iterable[Execution]) -> None:
        self._records.record(run_id, [m for e in executions for m in self._fused.member_executions(e)])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)


def fuse_comfy_groups(bound: BoundRecipe, store: ArtifactStore | None = None) -> FusedRecipe:
    """Each connected group of ``comfy:*`` nodes as one ``comfy:prompt`` node; RecipeInvalid for
    links the rewrite cannot honour (every problem at once). ``store`` resolves input files."""
    comfy = [node_id for node_id, node in bound.nodes.items() if node.node_type is None]
    if not comfy:
        return FusedRecipe(bound, {})
    components = sorted((sorted(c, key=_natural) for c in nx.connected_components(
        bound.graph.subgraph(comfy).to_undirected())), key=lambda c: _natural(c[0]))
    member_of = {member: tuple(c) for c in components for member in c}
    errors = _cycle_errors(bound, components)
    uses = _outside_uses(bound, member_of, errors)
    if errors:
        raise RecipeInvalid(errors)
    taken = set(bound.nodes)
    groups: dict[str, ComfyGroup] = {}
    ports: dict[str, tuple[str, str]] = {}  # member -> (group id, output port), for links from outside
    for members in components:
        group_id = _unique("+".join(members), taken)
        group = _build_group(bound, group_id, tuple(members), uses, store)
        groups[group_id] = group
        ports.update({o.member: (group_id, port) for port, o in group.outlets.items()})

    def relink(value: Any) -> Any:
        if isinstance(value, Link) and value.node in ports:
            return Link(link=ports[value.node])
        return value

    nodes: dict[str, BoundNode] = {}
    for node_id, node in bound.nodes.items():
        if node_id not in member_of:
            nodes[node_id] = replace(node, inputs={name: relink(v) for name, v in node.inputs.items()})
    for group in groups.values():
        spec = NodeSpec(type=GROUP_TYPE_ID, meta={"comfy_members": list(group.members)})
        inputs: dict[str, Any] = {"prompt": group.canonical, **group.entering}
        nodes[group.id] = BoundNode(group.id, spec, group.node_type(), inputs)
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    for node_id, node in nodes.items():
        graph.add_edges_from((v.node, node_id) for v in node.inputs.values() if isinstance(v, Link))
    outputs = {name: relink(link) for name, link in bound.outputs.items()}
    return FusedRecipe(replace(bound, nodes=nodes, graph=graph, outputs=outputs), groups)


def _unique(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "'"
    taken.add(name)
    return name


def _cycle_errors(bound: BoundRecipe, components: list[list[str]]) -> list[GraphError]:
    """A reelgraph node fed by a group and feeding the same group would need two prompts."""
    errors = []
    for members in components:
        group = set(members)
        after = set().union(*(nx.descendants(bound.graph, m) for m in members)) - group
        before = set().union(*(nx.ancestors(bound.graph, m) for m in members)) - group
        for node_id in sorted(after & before, key=_natural):
            errors.append(GraphError("cycle", json_path("nodes", node_id),
                                     f"ComfyUI nodes {', '.join(members)} run as one prompt, but node {node_id!r} "
                                     "both depends on that prompt and feeds it", node_id))
    return errors


def _outside_uses(bound: BoundRecipe, member_of: Mapping[str, tuple[str, ...]],
                  errors: list[GraphError]) -> dict[str, list[Port | None]]:
    """Members linked from reelgraph nodes and recipe outputs, with the consuming ports (None for a
    recipe output); reports links that are not to slot 0 or whose types cannot fit."""
    uses: dict[str, list[Port | None]] = {}
    found: list[tuple[str, Link, Port | None, str | None]] = [
        (json_path("nodes", node_id, "inputs", name), value, node.node_type.input(name) if node.node_type else None,
         node_id)
        for node_id, node in bound.nodes.items() if node_id not in member_of
        for name, value in node.inputs.items() if isinstance(value, Link) and value.node in member_of]
    found += [(json_path("outputs", name), link, None, None) for name, link in bound.outputs.items()
              if link.node in member_of]
    for path, link, port, consumer in found:
        cls = bound.nodes[link.node].spec.type.removeprefix(COMFY_TYPE_PREFIX)
        if link.output != 0:
            errors.append(GraphError("missing_output", path, f"links to slot {link.output} of ComfyUI node "
                                     f"{link.node!r} ({cls}); outside ComfyUI a node's files are slot 0 of the "
                                     "output node that saves them", consumer))
            continue
        saver = SAVERS.get(cls)
        if saver is not None and port is not None and not _types_compatible(saver[0], port.type):
            errors.append(GraphError("wrong_type", path, f"ComfyUI node {link.node!r} ({cls}) saves {saver[0]} "
                                     f"files but input {port.name!r} takes {port.type}", consumer))
            continue
        uses.setdefault(link.node, []).append(port)
    for member, consumers in uses.items():
        cls = bound.nodes[member].spec.type.removeprefix(COMFY_TYPE_PREFIX)
        wanted = {p.type for p in consumers if p is not None}
        if cls not in SAVERS and not wanted <= FILE_TYPES:
            errors.append(GraphError("wrong_type", json_path("nodes", member),
                                     f"ComfyUI node {member!r} ({cls}) gives files, but it is linked to inputs of "
                                     f"type {', '.join(sorted(wanted - FILE_TYPES))}", member))
    return uses


def _build_group(bound: BoundRecipe, group_id: str, members: tuple[str, ...],
                 uses: Mapping[str, list[Port | None]], store: ArtifactStore | None) -> ComfyGroup:
    nodes = {m: bound.nodes[m] for m in members}
    order = _canonical_order(bound, members)
    number = {member: str(index + 1) for index, member in enumerate(order)}
    entering: dict[str, Link] = {}
    roles: dict[tuple[str, str | int], str] = {}
    described: dict[str, Any] = {}
    for member in order:
        node = nodes[member]
        inputs: dict[str, Any] = {}
        for name in sorted(node.inputs):
            value = node.inputs[name]
            if isinstance(value, Link) and value.node in nodes:
                inputs[name] = ["link", number[value.node], value.output]
            elif isinstance(value, Link):
                role = roles.setdefault((value.node, value.output), f"in{len(roles)}")
                entering[role] = value
                inputs[name] = ["input", role]
            else:
                inputs[name] = ["value", value]
        entry: dict[str, Any] = {"class_type": node.spec.type.removeprefix(COMFY_TYPE_PREFIX), "inputs": inputs}
        if node.spec.nonce:
            entry["nonce"] = node.spec.nonce
        described[number[member]] = entry
    outlets: dict[str, _Outlet] = {}
    for member in order:
        cls = nodes[member].spec.type.removeprefix(COMFY_TYPE_PREFIX)
        if cls in SAVERS:
            kind, is_list = SAVERS[cls]
        elif member in uses:  # another class, linked for its files: typed by what consumes them
            wanted = {p.type for p in uses[member] if p is not None}
            kind, is_list = (wanted.pop() if len(wanted) == 1 else "file"), True
        else:
            continue
        outlets[f"out{len(outlets)}"] = _Outlet(member, f"out{len(outlets)}", kind, is_list)
    canonical = {"nodes": described, "outputs": {port: number[o.member] for port, o in outlets.items()}}
    return ComfyGroup(group_id, members, nodes, entering, outlets, canonical, store)


def _canonical_order(bound: BoundRecipe, members: tuple[str, ...]) -> list[str]:
    """Members ordered by a Merkle signature of their content (class, literals, what feeds them),
    so the order, and the canonical prompt, do not depend on node ids. Members that only differ
    by id (identical nodes fed alike) keep their id order: a rename there costs a rerun, never a
    wrong hit, since the canonical prompt still describes the graph exactly."""
    signature: dict[str, str] = {}
    for member in nx.topological_sort(bound.graph.subgraph(members)):
        node = bound.nodes[member]
        inputs = {}
        for name, value in node.inputs.items():
            if isinstance(value, Link) and value.node in signature:
                inputs[name] = ["link", signature[value.node], value.output]
            elif isinstance(value, Link):
                inputs[name] = ["input", str(value.output)]
            else:
                inputs[name] = ["value", value]
        signature[member] = digest_json({"class": node.spec.type, "inputs": inputs, "nonce": node.spec.nonce})
    return sorted(members, key=lambda m: (signature[m], _natural(m)))
