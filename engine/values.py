"""Value documents: how node inputs and outputs are represented, digested and stored.

Every value is a JSON document. Scalars and JSON values are themselves; a file is
``{"$artifact": "sha256:…", "size": n, "ext": ".png"}`` pointing into the blob store. A value's
digest is the digest of its canonical document, so a file's digest follows its bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..nodes.types import FILE_TYPES, Port, value_matches
from .canonical import UnhashableValueError, canonical_json, digest_json
from .store import ArtifactStore

ARTIFACT_KEY = "$artifact"


class _Failed:
    """Marks a list element whose producing execution failed or was skipped."""

    def __repr__(self) -> str:
        return "FAILED"


FAILED: Any = _Failed()


@dataclass
class PortValue:
    """What flows along a link: one value, or a list whose elements fan out downstream."""

    elements: list[Any]  # value documents, or FAILED
    is_list: bool
    _digests: list[str | None] = field(default_factory=list, repr=False)

    def digest(self, index: int) -> str:
        if not self._digests:
            self._digests = [None] * len(self.elements)
        known = self._digests[index]
        if known is None:
            if self.elements[index] is FAILED:
                return "failed"  # never keyed: work downstream of a failure is skipped
            known = self._digests[index] = digest_json(self.elements[index])
        return known

    def whole_digest(self) -> str:
        """Digest of the whole list, as seen by an aggregating input."""
        return digest_json([self.digest(i) for i in range(len(self.elements))])

    @property
    def failed(self) -> bool:
        return any(element is FAILED for element in self.elements)


class OutputError(ValueError):
    """A node returned something that does not fit its declared output."""


def artifact_doc(digest: str, size: int, ext: str) -> dict[str, Any]:
    return {ARTIFACT_KEY: digest, "size": size, "ext": ext}


def blobs_in(doc: Any, port_type: str) -> list[str]:
    if port_type not in FILE_TYPES:
        return []
    docs = doc if isinstance(doc, list) else [doc]
    return [item[ARTIFACT_KEY] for item in docs if isinstance(item, dict)]


def ingest_file(store: ArtifactStore, path: Path, *, move: bool) -> dict[str, Any]:
    digest, size = store.put_file(path, move=move)
    return artifact_doc(digest, size, path.suffix.lower())


def encode_output(
    store: ArtifactStore, port: Port, value: Any, work_dir: Path, inputs: Mapping[str, Any]
) -> Any:
    """Check a returned value against its port and turn it into a document (files go to the store).

    ``inputs`` maps the blob paths the node was given to their documents: a node that passes an
    input file through (a quality gate) returns that same document, extension included."""
    if port.is_list:
        if not isinstance(value, (list, tuple)):
            raise OutputError(f"output {port.name!r} must be a list of {port.type}, got {type(value).__name__}")
        return [_encode_one(store, port, item, work_dir, f"{port.name}[{i}]", inputs) for i, item in enumerate(value)]
    return _encode_one(store, port, value, work_dir, port.name, inputs)


def input_blob_docs(store: ArtifactStore, docs: Mapping[str, Any]) -> dict[str, Any]:
    """Blob path -> document for every file among a node's input documents."""
    found: dict[str, Any] = {}
    for doc in docs.values():
        for item in doc if isinstance(doc, list) else [doc]:
            if isinstance(item, dict) and ARTIFACT_KEY in item:
                found[str(store.blob_path(item[ARTIFACT_KEY]))] = item
    return found


def _encode_one(
    store: ArtifactStore, port: Port, value: Any, work_dir: Path, label: str, inputs: Mapping[str, Any]
) -> Any:
    if not value_matches(value, port.type):
        raise OutputError(f"output {label!r} must be {port.type}, got {type(value).__name__}")
    if port.type in FILE_TYPES:
        if str(value) in inputs:
            return inputs[str(value)]
        path = Path(value)
        if not path.is_file():
            raise OutputError(f"output {label!r}: file {path} was not written")
        # only files the node wrote into its own work dir may be moved; anything else is copied
        inside = path.resolve().is_relative_to(work_dir.resolve())
        return ingest_file(store, path, move=inside)
    try:
        canonical_json(value)
    except UnhashableValueError as exc:
        raise OutputError(f"output {label!r}: {exc}") from None
    if port.type == "number":
        return float(value)
    return value


def decode_input(store: ArtifactStore, port: Port, doc: Any) -> Any:
    """A document as the implementation sees it: files become read-only blob paths."""
    if port.type not in FILE_TYPES:
        return doc
    if port.is_list:
        return [_decode_file(store, item) for item in doc]
    return _decode_file(store, doc)


def _decode_file(store: ArtifactStore, doc: Any) -> Any:
    if isinstance(doc, dict) and ARTIFACT_KEY in doc:
        return store.blob_path(doc[ARTIFACT_KEY])
    return doc  # None for an unset optional file input


def normalize_literal(port: Port | None, value: Any) -> Any:
    """Literals enter keys in their typed form: an integer given to a number input is a float."""
    if port is not None and port.type == "number" and value is not None and not isinstance(value, bool):
        return [float(v) for v in value] if port.is_list else float(value)
    return value


def assemble_outputs(ports: Sequence[Port], element_outputs: Sequence[Any], fanned: bool) -> dict[str, PortValue]:
    """A node's outputs from its executions' outputs (or FAILED), in element order.

    A fanned-out node yields lists; a list output of a fanned-out node is flattened, as in ComfyUI.
    """
    values: dict[str, PortValue] = {}
    for port in ports:
        elements: list[Any] = []
        for outputs in element_outputs:
            if outputs is FAILED:
                elements.append(FAILED)
            elif port.is_list:
                elements.extend(outputs[port.name])
            else:
                elements.append(outputs[port.name])
        values[port.name] = PortValue(elements, is_list=port.is_list or fanned)
    return values
