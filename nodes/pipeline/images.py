"""image.search (stock and web search with fallback, or offline) and image.generate (a local
Pillow illustration, or SDXL/Flux on ComfyUI through ``comfy_workflows.placement``)."""

from __future__ import annotations

import colorsys
import hashlib
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import PIL

from ...comfy_workflows.keys import fingerprint_for
from ..folder_inputs import folder_fingerprint, open_folder
from ..providers.http import ProviderError
from ..providers.search_base import ImageCandidate, SearchProvider, rank
from ..providers.search_local import IMAGE_SUFFIXES, find_in_folder
from ..providers.search_stock import PEXELS, PIXABAY
from ..providers.search_web import BRAVE, GOOGLE, SERPAPI
from ..types import NodeContext, NodeFailure, Port, node_type
from .costs import estimate_search

if TYPE_CHECKING:  # Pillow is imported where used: every command loads this module
    from PIL import Image

# "auto" tries, in this order, every provider whose keys are set: licensed stock first, web after.
SEARCH_PROVIDERS: dict[str, SearchProvider] = {p.name: p for p in (PEXELS, PIXABAY, BRAVE, SERPAPI, GOOGLE)}
PROVIDER_CHOICES = ("offline", *SEARCH_PROVIDERS, "auto")
DOWNLOAD_ATTEMPTS = 5  # best-ranked candidates tried before a provider counts as failed


def _check_size(width: int, height: int) -> None:
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise NodeFailure(f"size {width}x{height} is outside 16..8192 pixels")


def _hsv(hue: float, saturation: float, value: float, alpha: int = 255) -> tuple[int, int, int, int]:
    red, green, blue = colorsys.hsv_to_rgb(hue % 1.0, max(0.0, min(1.0, saturation)), max(0.0, min(1.0, value)))
    return round(red * 255), round(green * 255), round(blue * 255), alpha


def render_still(prompt: str, style: str, seed: int, width: int, height: int) -> Image.Image:
    """A deterministic illustrated landscape: the palette follows ``style`` (so every scene of a
    video shares it), the composition follows ``prompt`` and ``seed``."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(hashlib.sha256(f"{prompt}\0{style}\0{seed}".encode()).digest())
    look = random.Random(hashlib.sha256(f"style\0{style.strip()}".encode()).digest()) if style.strip() else rng
    base_hue, saturation = look.random(), 0.35 + 0.4 * look.random()
    hue = base_hue + rng.uniform(-0.05, 0.05)
    # paint small and scale up: fast, and the upscale softens edges into a painted look
    factor = max(1, min(width, height) // 270)
    w, h = max(8, -(-width // factor)), max(8, -(-height // factor))

    mask = Image.linear_gradient("L").resize((w, h))
    sky = Image.composite(
        Image.new("RGBA", (w, h), _hsv(hue + 0.08, saturation * 0.6, 0.97)),
        Image.new("RGBA", (w, h), _hsv(hue, saturation, 0.32)),
        mask,
    )
    glow = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(glow)
    sun_x, sun_y, radius = w * rng.uniform(0.2, 0.8), h * rng.uniform(0.15, 0.42), w * rng.uniform(0.09, 0.18)
    halo = 2 * radius
    draw.ellipse((sun_x - halo, sun_y - halo, sun_x + halo, sun_y + halo), fill=_hsv(hue + 0.12, 0.3, 1.0, 90))
    for _ in range(rng.randint(5, 11)):  # bokeh
        x, y, r = w * rng.random(), h * rng.uniform(0.0, 0.55), w * rng.uniform(0.01, 0.05)
        colour = _hsv(hue + rng.uniform(-0.1, 0.2), 0.2, 1.0, rng.randint(35, 90))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    sky.alpha_composite(glow.filter(ImageFilter.GaussianBlur(radius / 1.5)))
    disc = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    sun = (sun_x - radius, sun_y - radius, sun_x + radius, sun_y + radius)
    ImageDraw.Draw(disc).ellipse(sun, fill=_hsv(hue + 0.12, 0.25, 1.0, 235))
    sky.alpha_composite(disc)

    layers = rng.randint(3, 4)
    for layer in range(layers):  # hills, back to front: lower, darker, sharper
        baseline = h * (0.52 + 0.12 * layer + rng.uniform(-0.03, 0.03))
        steps = 10
        level, points = 0.0, [(0.0, float(h))]
        for step in range(steps + 1):
            level = 0.6 * level + rng.uniform(-1.0, 1.0)
            points.append((w * step / steps, baseline + level * h * 0.05))
        points.append((float(w), float(h)))
        hill = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        value = 0.62 - 0.14 * layer
        ImageDraw.Draw(hill).polygon(points, fill=_hsv(hue + 0.5 + 0.03 * layer, saturation * 0.8, value))
        blur = (layers - 1 - layer) * 0.6
        sky.alpha_composite(hill.filter(ImageFilter.GaussianBlur(blur)) if blur else hill)
    return sky.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)


def _generated(ctx: NodeContext, query: str, width: int, height: int) -> tuple[Path, dict[str, Any]]:
    out = ctx.path("generated.png")
    render_still(query, "", 0, width, height).save(out, format="PNG")
    return out, {"title": query, "source_url": "", "page_url": "", "license": "generated", "provider": "generated"}


def _offline(ctx: NodeContext, query: str, folder: str, width: int, height: int) -> tuple[Path, dict[str, Any]]:
    # imported here, not at the top: safe_download loads requests, and the registry loads this module
    from ..providers.safe_download import MAX_BYTES, reencode_image

    if folder.strip():
        match = find_in_folder(open_folder("folder", folder), query)
        if match is not None:
            if match.stat().st_size > MAX_BYTES:
                raise NodeFailure(f"input 'folder': {match.name} is over the {MAX_BYTES} byte cap")
            try:
                image = reencode_image(match.read_bytes(), ctx.work_dir, label=f"folder image {match.name}")
            except ProviderError as exc:
                raise NodeFailure(f"input 'folder': {exc}") from None
            return image, {
                "title": match.stem,
                "source_url": match.resolve().as_uri(),
                "page_url": "",
                "license": "local file",
                "provider": "folder",
            }
    return _generated(ctx, query, width, height)


def _download_best(
    ctx: NodeContext, candidates: list[ImageCandidate], width: int, height: int, reasons: list[str]
) -> tuple[Path, dict[str, Any]] | None:
    from ..providers.safe_download import download_image  # see _offline

    for candidate in rank(candidates, width, height)[:DOWNLOAD_ATTEMPTS]:
        try:
            image = download_image(candidate.url, ctx.work_dir)
        except ProviderError as exc:  # refused or broken: the next candidate may do
            reasons.append(str(exc))
            continue
        return image, {
            "title": candidate.title,
            "source_url": candidate.url,
            "page_url": candidate.page_url,
            "license": candidate.license,
            "provider": candidate.provider,
        }
    return None


def _configured(provider: SearchProvider) -> bool:
    return all(os.environ.get(name, "").strip() for name in provider.key_envs)


def folder_provider_fingerprint(inputs: Mapping[str, Any]) -> dict[str, str]:
    """The folder's images enter the key when the search reads the folder: "offline", or "auto"
    with no search provider configured. With a provider configured the folder is only the fallback
    after every provider failed; fingerprinting it there would redo a pinned stock search for a
    change in a folder that was not used."""
    provider, folder = inputs["provider"], inputs["folder"]
    uses_folder = provider == "offline" or (provider == "auto" and not any(map(_configured, SEARCH_PROVIDERS.values())))
    if not uses_folder or not folder.strip():
        return {}
    return folder_fingerprint("folder", folder, IMAGE_SUFFIXES, recursive=True)


@node_type(
    "image.search",
    category="image",
    impl_version="1",
    deterministic=False,  # results change over time: pinned on first result
    inputs=[
        Port("query", "string"),
        Port(
            "provider",
            "string",
            optional=True,
            default="offline",
            description="offline | pexels | pixabay | brave | serpapi | google | "
            "auto (each provider with keys set, in that order, then offline)",
        ),
        Port(
            "folder",
            "string",
            optional=True,
            default="",
            description="offline (and auto's last resort): local folder of images matched by file name",
        ),
        Port("width", "integer", optional=True, default=1080),
        Port("height", "integer", optional=True, default=1920),
    ],
    outputs=[
        Port("image", "image", description="the best match, re-encoded (PNG or JPEG), not cropped"),
        Port("metadata", "json", description="title, source_url, page_url, license, width, height, provider, query"),
    ],
    environment=lambda: {"pillow": PIL.__version__},
    fingerprint=folder_provider_fingerprint,
    estimate_cost=estimate_search,
)
def image_search(ctx: NodeContext, query: str, provider: str, folder: str, width: int, height: int) -> dict[str, Any]:
    """Find an image for a query: ranked by resolution, aspect fit and watermark heuristics."""
    _check_size(width, height)
    if provider not in PROVIDER_CHOICES:
        raise NodeFailure(f"input 'provider': {provider!r} is not one of {', '.join(PROVIDER_CHOICES)}")
    query = " ".join(query.split())
    if not query:
        raise NodeFailure("input 'query' is empty")
    picked: tuple[Path, dict[str, Any]] | None = None
    if provider != "offline":
        names = [provider] if provider != "auto" else [n for n, p in SEARCH_PROVIDERS.items() if _configured(p)]
        for index, name in enumerate(names):
            ctx.progress(index / max(1, len(names)), f"searching {name}")
            reasons: list[str] = []
            try:
                candidates = SEARCH_PROVIDERS[name].search(query, width, height)
            except ProviderError as exc:
                if provider != "auto":
                    raise
                ctx.progress(index / max(1, len(names)), f"{exc}; trying the next provider")
                continue
            picked = _download_best(ctx, candidates, width, height, reasons)
            if picked is not None:
                break
            if provider != "auto":
                why = f": {reasons[-1]}" if reasons else ""
                raise NodeFailure(f"{name}: no usable image for query {query!r} ({len(candidates)} results){why}")
    if picked is None:
        picked = _offline(ctx, query, folder, width, height)
    image, metadata = picked
    from PIL import Image

    with Image.open(image) as opened:
        actual_width, actual_height = opened.size
    metadata |= {"width": actual_width, "height": actual_height, "query": query}
    ordered = ("title", "source_url", "page_url", "license", "width", "height", "provider", "query")
    return {"image": image, "metadata": {key: metadata[key] for key in ordered}}


def _generate_environment() -> dict[str, Any]:
    return {"pillow": PIL.__version__}  # the templates key ComfyUI executions only (``fingerprint_for``)


@node_type(
    "image.generate",
    category="image",
    impl_version="2",
    placement="both",  # ComfyUI: an SDXL/Flux fragment; locally: this Pillow renderer
    inputs=[
        Port("prompt", "string"),
        Port("style", "string", optional=True, default="", description="shared by every scene: keeps one look"),
        Port("width", "integer", optional=True, default=1080),
        Port("height", "integer", optional=True, default=1920),
        Port("seed", "integer", optional=True, default=0),
        Port("model", "string", optional=True, default="pillow", description="pillow (local) | sdxl | flux (ComfyUI)"),
    ],
    outputs=[
        Port("image", "image", description="exactly width x height"),
        Port("placement", "json", description="where it ran: local, or the ComfyUI instance, its version, "
                                              "the workflow template digest and the model files"),
    ],
    environment=_generate_environment,
    fingerprint=fingerprint_for("image.generate"),  # the ComfyUI and pack versions, when it runs there
)
def image_generate(ctx: NodeContext, prompt: str, style: str, width: int, height: int, seed: int,
                   model: str = "pillow") -> dict[str, Any]:
    """Render an illustrative still for a prompt: a deterministic Pillow illustration (local), or
    SDXL / Flux on ComfyUI (the style is added to the prompt)."""
    _check_size(width, height)
    if model != "pillow":
        from ...comfy_workflows.placement import run_still

        return run_still(ctx, prompt=prompt, style=style, width=width, height=height, seed=seed, model=model)
    out = ctx.path("generated.png")
    render_still(" ".join(prompt.split()), style, seed, width, height).save(out, format="PNG")
    return {"image": out, "placement": {"placement": "local", "model": "pillow"}}


NODE_TYPES = [image_search, image_generate]
