"""Downloading images from URLs that search results (i.e. strangers) chose, without SSRF.

Every hop: http(s) only; the host is resolved here and every address must be public; the
connection goes to the vetted address (so DNS cannot change between check and connect), with
the original Host header and TLS server name; redirects are followed by hand and re-checked;
the body is capped while streaming; the bytes are identified by Pillow, never by Content-Type,
and re-encoded so no metadata or trailing payload survives.

``allow_private`` (or ``REELGRAPH_ALLOW_PRIVATE_DOWNLOADS=1``) also admits private and loopback
addresses (never link-local, multicast, reserved or unspecified ones). It exists for tests against
loopback servers and for self-hosted image servers on a private network.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from PIL import Image, ImageOps
from requests.adapters import HTTPAdapter

from .http import ProviderError

ALLOW_PRIVATE_ENV = "REELGRAPH_ALLOW_PRIVATE_DOWNLOADS"
MAX_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 60_000_000  # larger images are refused before decoding (decompression bombs)
MAX_REDIRECTS = 5
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = "reelgraph-image-fetch/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DownloadRefused(ProviderError):
    """The URL, its address or its content is not acceptable."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64): each must pass too."""
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def is_public(address: IPAddress) -> bool:
    """Whether an address is a public unicast address on the internet."""
    if isinstance(address, ipaddress.IPv6Address):
        if any(not is_public(inner) for inner in _embedded_ipv4(address)):
            return False
        if address.ipv4_mapped is not None:
            return True  # judged by its IPv4 address above
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")


def acceptable(address: IPAddress, allow_private: bool) -> bool:
    """Public addresses always; with ``allow_private`` also private and loopback ones. Link-local
    (cloud metadata at 169.254.169.254), multicast, reserved and unspecified never are."""
    if is_public(address):
        return True
    if not allow_private:
        return False
    inner = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped else address
    if inner.is_loopback:
        return True
    never = inner.is_link_local or inner.is_multicast or inner.is_unspecified or inner.is_reserved
    if isinstance(inner, ipaddress.IPv4Address):
        never = never or inner in _THIS_NETWORK
    return inner.is_private and not never


def _allow_private(allow_private: bool | None) -> bool:
    if allow_private is not None:
        return allow_private
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip() == "1"


def _vet(url: str, allow_private: bool) -> tuple[str, str, int, list[IPAddress]]:
    """Check a URL and resolve its host; returns (scheme, host, port, the vetted addresses)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadRefused(f"download: only http and https URLs are fetched, not {scheme or 'no scheme'!r}")
    if parts.username or parts.password:
        raise DownloadRefused("download: URLs with user names or passwords are not fetched")
    host = parts.hostname
    if not host:
        raise DownloadRefused(f"download: {url[:200]!r} has no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise DownloadRefused(f"download: {url[:200]!r} has an invalid port") from None
    try:
        # getaddrinfo also reads numeric forms like 2130706433 or 0177.0.0.1, so they are checked as addresses
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DownloadRefused(f"download: cannot resolve host {host!r} ({exc})") from None
    addresses: list[IPAddress] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise DownloadRefused(f"download: host {host!r} has no address")
    refused = [str(a) for a in addresses if not acceptable(a, allow_private)]
    if refused:
        listed = ", ".join(refused)
        raise DownloadRefused(f"download: host {host!r} resolves to a non-public address ({listed}); refused")
    return scheme, host, port, addresses


class _PinnedAdapter(HTTPAdapter):
    """Connects to a vetted IP while TLS checks the certificate for the original host name."""

    def __init__(self, hostname: str) -> None:
        self._hostname = hostname
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kwargs: Any) -> None:
        kwargs.update(server_hostname=self._hostname, assert_hostname=self._hostname)
        super().init_poolmanager(connections, maxsize, block=block, **kwargs)


def _fetch_once(url: str, allow_private: bool, max_bytes: int, timeout: float) -> tuple[int, str | None, bytes]:
    """One hop: (status, Location header, body). The body is read only for a final answer."""
    scheme, host, port, addresses = _vet(url, allow_private)
    failure = ""
    for address in addresses:  # every one is vetted; the next is tried only if one cannot connect
        try:
            return _fetch_from(address, url, scheme, host, port, max_bytes, timeout)
        except requests.ConnectionError as exc:
            failure = type(exc).__name__
        except requests.RequestException as exc:
            raise ProviderError(f"download: could not fetch {url[:200]}: {type(exc).__name__}") from None
    raise ProviderError(f"download: could not connect to {host!r} for {url[:200]}: {failure}")


def _ca_bundle() -> str | bool:
    """The CA bundle requests would use from the environment (ignored with trust_env off)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def _fetch_from(
    address: IPAddress, url: str, scheme: str, host: str, port: int, max_bytes: int, timeout: float
) -> tuple[int, str | None, bytes]:
    parts = urlsplit(url)
    literal = f"[{address}]" if address.version == 6 else str(address)
    pinned = urlunsplit((scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    default_port = 443 if scheme == "https" else 80
    name = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets in Host
    host_header = name if port == default_port else f"{name}:{port}"
    with requests.Session() as session:
        session.trust_env = False  # an environment proxy would connect by name, defeating the pin
        session.mount(f"{scheme}://", _PinnedAdapter(host))
        response = session.get(
            pinned,
            headers={"Host": host_header, "User-Agent": _USER_AGENT, "Accept": "image/*"},
            allow_redirects=False,
            stream=True,
            timeout=timeout,
            verify=_ca_bundle(),
        )
        with response:
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
