"""Recipe templates shipped with reelgraph: ``graphs/templates/<name>.json``."""

from __future__ import annotations

from pathlib import Path

TEMPLATE_DIR = Path(__file__).parent / "templates"


def template_names() -> list[str]:
    return sorted(path.stem for path in TEMPLATE_DIR.glob("*.json"))


def template_path(name: str) -> Path | None:
    path = TEMPLATE_DIR / f"{name}.json"
    return path if name in template_names() else None
