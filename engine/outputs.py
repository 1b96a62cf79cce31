"""Copying a run's named outputs out of the store into a user folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .store import ArtifactStore
from .values import ARTIFACT_KEY, FAILED, PortValue


def export_outputs(outputs: dict[str, PortValue], out_dir: Path, store: ArtifactStore) -> dict[str, Any]:
    """Write each output as ``<name><ext>`` (lists as ``<name>/<index><ext>``); returns name -> absolute path(s).

    Files are copied, never linked: the store's blobs must stay immutable whatever users do to outputs.
    """
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {}
    for name, value in outputs.items():
        if value.is_list:
            folder = out_dir / name
            folder.mkdir(exist_ok=True)
            written[name] = [_write(doc, folder / f"{index:03d}", store) for index, doc in enumerate(value.elements)]
        else:
            written[name] = _write(value.elements[0], out_dir / name, store)
    return written


def _write(doc: Any, stem: Path, store: ArtifactStore) -> str | None:
    if doc is FAILED:
        return None
    if isinstance(doc, dict) and ARTIFACT_KEY in doc:
        target = stem.with_name(stem.name + (doc.get("ext") or ""))
        shutil.copyfile(store.blob_path(doc[ARTIFACT_KEY]), target)
    else:
        target = stem.with_name(stem.name + ".json")
        target.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return str(target)
