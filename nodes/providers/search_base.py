"""What every image-search adapter returns, and how candidates are ranked for a target frame."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .http import ProviderError

if TYPE_CHECKING:
    import requests

SEARCH_COUNT = 20  # candidates asked of each provider

# Stock libraries whose previews carry watermarks, and words that announce one.
STOCK_MARKERS = (
    "watermark",
    "shutterstock",
    "istock",
    "gettyimages",
    "getty",
    "alamy",
    "dreamstime",
    "depositphotos",
    "123rf",
    "adobestock",
    "stock.adobe",
    "bigstock",
    "canstockphoto",
    "fotolia",
    "vectorstock",
    "pond5",
    "agefotostock",
)
WATERMARK_PENALTY = 0.1


@dataclass(frozen=True)
class ImageCandidate:
    url: str  # the image file
    page_url: str  # the page that shows it (attribution)
    title: str
    license: str
    width: int  # 0 when the provider does not say
    height: int
    provider: str


@dataclass(frozen=True)
class SearchProvider:
    name: str
    key_envs: tuple[str, ...]  # all must be set for "auto" to try it
    search: Callable[[str, int, int], list[ImageCandidate]]  # (query, width, height)


def orientation(width: int, height: int) -> str:
    if height > width * 1.1:
        return "portrait"
    if width > height * 1.1:
        return "landscape"
    return "square"


def looks_watermarked(candidate: ImageCandidate) -> bool:
    text = " ".join((candidate.url, candidate.page_url, candidate.title)).lower()
    return any(marker in text for marker in STOCK_MARKERS) or bool(re.search(r"\bstock photo\b", text))


def score(candidate: ImageCandidate, width: int, height: int) -> float:
    """0..1: resolution (how little the image must be upscaled to cover the frame) and aspect fit
    (how much of it a cover-crop keeps), each half; watermarked stock previews sink to the bottom."""
    if candidate.width > 0 and candidate.height > 0:
        resolution = min(1.0, candidate.width / width, candidate.height / height)
        aspect, target = candidate.width / candidate.height, width / height
        fit = min(aspect, target) / max(aspect, target)
    else:
        resolution = fit = 0.4  # unknown size: below a known good image, above a known bad one
    value = 0.5 * resolution + 0.5 * fit
    return value * WATERMARK_PENALTY if looks_watermarked(candidate) else value


def rank(candidates: Sequence[ImageCandidate], width: int, height: int) -> list[ImageCandidate]:
    """Best first; ties keep the provider's own order (its relevance)."""
    seen: set[str] = set()
    unique = []
    for candidate in candidates:
        if candidate.url.startswith(("http://", "https://")) and candidate.url not in seen:
            seen.add(candidate.url)
            unique.append(candidate)
    return sorted(unique, key=lambda c: -score(c, width, height))


def response_json(provider: str, response: requests.Response) -> dict[str, Any]:
    """A provider's JSON object body, or a ProviderError saying it was something else."""
    try:
        document = response.json()
    except ValueError:
        raise ProviderError(f"{provider}: the reply is not JSON") from None
    if not isinstance(document, dict):
        raise ProviderError(f"{provider}: the reply is not a JSON object")
    return document


def as_int(value: Any) -> int:
    """A dimension from a reply (number or numeric string); 0 when absent or malformed."""
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0
