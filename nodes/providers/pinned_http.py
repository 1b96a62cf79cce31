"""Outbound HTTP to URLs that strangers chose (image results, webhook targets), without SSRF.

``vet`` checks a URL (http(s) only, no credentials) and resolves its host once; every address
must be acceptable. ``pinned_request`` then connects to exactly a vetted address — never
resolving the name again, so DNS cannot change between check and connect (rebinding) — while
the Host header and the TLS server name (certificate check) keep the original host name.
Redirects are never followed here; callers that follow them vet each hop.

Shared by ``safe_download`` (images) and the API server's webhooks.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")


class UnsafeTarget(ValueError):
    """The URL, or an address its host resolves to, is not one we connect to."""


class Unresolvable(UnsafeTarget):
    """The host name does not resolve (possibly a passing DNS failure)."""


class NonPublicAddress(UnsafeTarget):
    """The host resolves to an address that is not acceptable (private, loopback, link-local…)."""


@dataclass(frozen=True)
class Target:
    """A vetted URL: where to connect (``addresses``) and what to call it (``host``)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


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


def vet(url: str, allow_private: bool) -> Target:
    """Check a URL and resolve its host; raise UnsafeTarget saying why it is refused."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeTarget(f"only http and https URLs are allowed, not {scheme or 'no scheme'!r}")
    if parts.username or parts.password:
        raise UnsafeTarget("URLs with user names or passwords are refused")
    host = parts.hostname
    if not host:
        raise UnsafeTarget(f"{url[:200]!r} has no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise UnsafeTarget(f"{url[:200]!r} has an invalid port") from None
    try:
        # getaddrinfo also reads numeric forms like 2130706433 or 0177.0.0.1, so they are checked as addresses
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"cannot resolve host {host!r} ({exc})") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])  # drop an IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Unresolvable(f"host {host!r} has no address")
    refused = [str(a) for a in addresses if not acceptable(a, allow_private)]
    if refused:
        raise NonPublicAddress(f"host {host!r} resolves to a non-public address ({', '.join(refused)})")
    return Target(url, scheme, host, port, tuple(addresses))


class PinnedAdapter(HTTPAdapter):
    """Connects to a vetted IP while TLS checks the certificate for the original host name."""

    def __init__(self, hostname: str) -> None:
        self._hostname = hostname
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kwargs: Any) -> None:
        kwargs.update(server_hostname=self._hostname, assert_hostname=self._hostname)
        super().init_poolmanager(connections, maxsize, block=block, **kwargs)


def _ca_bundle() -> str | bool:
    """The CA bundle requests would use from the environment (ignored with trust_env off)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


@contextmanager
def pinned_request(
    target: Target,
    method: str,
    *,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = 30.0,
    stream: bool = False,
) -> Iterator[requests.Response]:
    """One request to the first vetted address of ``target`` that accepts a connection; the
    response is closed when the block ends. Raises the last ``requests.ConnectionError`` (TLS
    failures included) when none does; never follows redirects."""
    parts = urlsplit(target.url)
    default_port = 443 if target.scheme == "https" else 80
    name = f"[{target.host}]" if ":" in target.host else target.host  # an IPv6 literal keeps its brackets
    host_header = name if target.port == default_port else f"{name}:{target.port}"
    failure: requests.ConnectionError | None = None
    for address in target.addresses:  # every one is vetted; the next is tried only if one cannot connect
        literal = f"[{address}]" if address.version == 6 else str(address)
        pinned = urlunsplit((target.scheme, f"{literal}:{target.port}", parts.path or "/", parts.query, ""))
        with requests.Session() as session:
            session.trust_env = False  # an environment proxy would connect by name, defeating the pin
            session.mount(f"{target.scheme}://", PinnedAdapter(target.host))
            try:
                response = session.request(
                    method, pinned, headers={**(headers or {}), "Host": host_header}, data=data,
                    allow_redirects=False, stream=stream, timeout=timeout, verify=_ca_bundle(),
                )
            except requests.ConnectionError as exc:
                failure = exc
                continue
            with response:
                yield response
            return
    assert failure is not None  # vet() never returns a target without addresses
    raise failure
