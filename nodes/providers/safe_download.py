"""Downloading images from URLs that search results (i.e. strangers) chose, without SSRF.

Every hop: http(s) only; the host is resolved here and every address must be public; the
connection goes to the vetted address (so DNS cannot change between check and connect), with
the original Host header and TLS server name (``pinned_http``, shared with the server's
webhooks); redirects are followed by hand and re-checked;
the body is capped while streaming; the bytes are identified by Pillow, never by Content-Type,
and re-encoded so no metadata or trailing payload survives.

``allow_private`` (or ``REELGRAPH_ALLOW_PRIVATE_DOWNLOADS=1``) also admits private and loopback
addresses (never link-local, multicast, reserved or unspecified ones). It exists for tests against
loopback servers and for self-hosted image servers on a private network.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from urllib.parse import urljoin

import requests
from PIL import Image, ImageOps

from .http import ProviderError
from .pinned_http import Target, UnsafeTarget, pinned_request, vet

ALLOW_PRIVATE_ENV = "REELGRAPH_ALLOW_PRIVATE_DOWNLOADS"
MAX_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 60_000_000  # larger images are refused before decoding (decompression bombs)
MAX_REDIRECTS = 5
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = "reelgraph-image-fetch/1"


class DownloadRefused(ProviderError):
    """The URL, its address or its content is not acceptable."""


def _allow_private(allow_private: bool | None) -> bool:
    if allow_private is not None:
        return allow_private
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip() == "1"


def _fetch_once(url: str, allow_private: bool, max_bytes: int, timeout: float) -> tuple[int, str | None, bytes]:
    """One hop: (status, Location header, body). The body is read only for a final answer."""
    try:
        target = vet(url, allow_private)
    except UnsafeTarget as exc:
        raise DownloadRefused(f"download: {exc}; refused") from None
    try:
        return _fetch_from(target, max_bytes, timeout)
    except requests.ConnectionError as exc:  # no vetted address accepted a connection (TLS included)
        raise ProviderError(f"download: could not connect to {target.host!r} for {url[:200]}: {type(exc).__name__}") from None
    except requests.RequestException as exc:
        raise ProviderError(f"download: could not fetch {url[:200]}: {type(exc).__name__}") from None


def _fetch_from(target: Target, max_bytes: int, timeout: float) -> tuple[int, str | None, bytes]:
    url = target.url
    headers = {"User-Agent": _USER_AGENT, "Accept": "image/*"}
    with pinned_request(target, "GET", headers=headers, timeout=timeout, stream=True) as response:
        if response.status_code in _REDIRECTS:
            return response.status_code, response.headers.get("Location"), b""
        if response.status_code >= 400:
            raise ProviderError(f"download: {url[:200]} answered HTTP {response.status_code}")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise DownloadRefused(f"download: {url[:200]} is {int(declared)} bytes, over the {max_bytes} byte cap")
        body = bytearray()
        for chunk in response.iter_content(64 * 1024):
            body.extend(chunk)
            if len(body) > max_bytes:
                raise DownloadRefused(f"download: {url[:200]} is over the {max_bytes} byte cap")
        return response.status_code, None, bytes(body)


def fetch(url: str, *, max_bytes: int = MAX_BYTES, allow_private: bool | None = None, timeout: float = 30.0) -> bytes:
    """The body at ``url`` after at most MAX_REDIRECTS vetted redirects."""
    allowed = _allow_private(allow_private)
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        status, location, body = _fetch_once(current, allowed, max_bytes, timeout)
        if location is None:
            if status in _REDIRECTS:
                raise ProviderError(f"download: {current[:200]} redirects without a Location")
            return body
        current = urljoin(current, location)
    raise DownloadRefused(f"download: {url[:200]} redirects more than {MAX_REDIRECTS} times")


def reencode_image(data: bytes, dest_dir: Path, *, label: str, max_pixels: int = MAX_PIXELS) -> Path:
    """Identify image bytes with Pillow and write a clean PNG (alpha) or JPEG; metadata is dropped."""
    try:
        # open() reads only the header: the pixel cap is checked before anything is decoded
        with Image.open(io.BytesIO(data)) as probe:
            kind, (width, height) = probe.format, probe.size
            if kind not in ACCEPTED_FORMATS:
                raise DownloadRefused(f"{label}: {kind or 'unknown'} images are not accepted")
            if width * height > max_pixels:
                raise DownloadRefused(f"{label}: {width}x{height} pixels is over the {max_pixels} pixel cap")
            probe.seek(0)  # the first frame of an animation
            image = ImageOps.exif_transpose(probe)  # keep the intended orientation, then drop EXIF
            image.load()
    except DownloadRefused:
        raise
    except Image.DecompressionBombError:
        raise DownloadRefused(f"{label}: the image is a decompression bomb (too many pixels)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DownloadRefused(f"{label}: the bytes are not an image Pillow can read ({type(exc).__name__})") from None
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    clean = image.convert("RGBA" if has_alpha else "RGB")
    clean.info = {}
    digest = hashlib.sha256(data).hexdigest()[:16]
    dest_dir.mkdir(parents=True, exist_ok=True)
    if has_alpha:
        path = dest_dir / f"image-{digest}.png"
        clean.save(path, format="PNG", optimize=False)
    else:
        path = dest_dir / f"image-{digest}.jpg"
        clean.save(path, format="JPEG", quality=92)
    return path


def download_image(
    url: str,
    dest_dir: Path,
    max_bytes: int = MAX_BYTES,
    *,
    allow_private: bool | None = None,
    max_pixels: int = MAX_PIXELS,
    timeout: float = 30.0,
) -> Path:
    """Fetch an image safely and re-encode it into ``dest_dir``; raises ProviderError/DownloadRefused."""
    data = fetch(url, max_bytes=max_bytes, allow_private=allow_private, timeout=timeout)
    return reencode_image(data, Path(dest_dir), label=f"download {url[:200]}", max_pixels=max_pixels)
