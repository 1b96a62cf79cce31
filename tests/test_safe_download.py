"""Safe image downloads: SSRF refusals (before any connection), redirects re-checked, size caps,
content sniffed by Pillow and re-encoded without metadata.

Also home of the loopback HTTP server the provider tests share (``Loopback``)."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin
from reelgraph.nodes.providers.http import ProviderError
from reelgraph.nodes.providers.safe_download import ALLOW_PRIVATE_ENV, DownloadRefused, download_image
from reelgraph.tests.loopback_http import Loopback, image_bytes, image_reply, json_reply


# ---- refusals before connecting ---------------------------------------------------------------

@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.8.9.10",
        "localhost",  # a DNS name that resolves to loopback
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "169.254.169.254",  # cloud metadata (link-local)
        "0.0.0.0",
        "224.0.0.1",  # multicast
        "240.0.0.1",  # reserved
        "2130706433",  # decimal 127.0.0.1
        "0177.0.0.1",  # octal 127.0.0.1
        "0x7f.0.0.1",  # hex 127.0.0.1
        "127.1",  # short form
        "017700000001",  # octal as one number
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[ff02::1]",
        "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
        "[::ffff:169.254.169.254]",
        "[::ffff:7f00:1]",
        "[2002:7f00:1::1]",  # 6to4 wrapping 127.0.0.1
        "[64:ff9b::a00:1]",  # NAT64 wrapping 10.0.0.1
    ],
)
def test_non_public_addresses_are_refused_before_any_connection(host, loopback, tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_PRIVATE_ENV, raising=False)
    loopback.on("/a.png", image_reply(image_bytes(8, 8)))
    with pytest.raises(DownloadRefused, match="non-public address"):
        download_image(f"http://{host}:{loopback.port}/a.png", tmp_path)
    assert loopback.seen == []  # refused on the address: nothing reached the server
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.com/a.png", "only http and https"),
        ("gopher://127.0.0.1:70/", "only http and https"),
        ("example.com/a.png", "only http and https"),
        ("http://user:pw@example.com/a.png", "user names or passwords"),
        ("http:///a.png", "has no host"),
        ("http://no-such-host.invalid/a.png", "cannot resolve host"),
    ],
)
def test_bad_urls_are_refused(url, message, tmp_path):
    with pytest.raises(DownloadRefused, match=message):
        download_image(url, tmp_path, allow_private=True)


# ---- the allowed path (loopback admitted explicitly, as tests and self-hosted servers need) ----

def test_allowed_download_is_sniffed_re_encoded_and_stripped_of_metadata(loopback, tmp_path):
    exif = Image.Exif()
    exif[0x010E] = "secret description"
    original = image_bytes(40, 30, "JPEG", exif=exif.tobytes(), comment=b"hidden comment") + b"TRAILING-PAYLOAD"
    loopback.on("/photo", image_reply(original, "text/html"))  # the header lies; the bytes decide
    path = download_image(loopback.url("/photo", host="localhost"), tmp_path, allow_private=True)
    assert path.parent == tmp_path and path.suffix == ".jpg"
    data = path.read_bytes()
    assert b"secret description" not in data and b"hidden comment" not in data and b"TRAILING-PAYLOAD" not in data
    with Image.open(path) as image:
        assert image.format == "JPEG" and image.size == (40, 30)
        assert not image.getexif()
    (request,) = loopback.to("/photo")
    assert request.headers["host"] == f"localhost:{loopback.port}"  # connected by address, named by host


def test_png_with_alpha_stays_png_and_loses_text_chunks(loopback, tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "tracking-id-123")
    buffer = io.BytesIO()
    Image.new("RGBA", (10, 12), (10, 20, 30, 128)).save(buffer, format="PNG", pnginfo=info)
    loopback.on("/a.png", image_reply(buffer.getvalue()))
    path = download_image(loopback.url("/a.png"), tmp_path, allow_private=True)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGBA" and image.size == (10, 12)
        assert "Comment" not in image.info
    assert b"tracking-id-123" not in path.read_bytes()


def test_environment_switch_admits_loopback(loopback, tmp_path, monkeypatch):
    loopback.on("/a.png", image_reply(image_bytes(8, 8)))
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")
    assert download_image(loopback.url("/a.png"), tmp_path).is_file()
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "0")
    with pytest.raises(DownloadRefused):
        download_image(loopback.url("/a.png"), tmp_path)


# ---- redirects ----------------------------------------------------------------------------------

def test_redirects_are_followed_and_each_hop_is_checked(loopback, tmp_path):
    loopback.on("/start", (302, {"Location": "/next"}, b""))
    loopback.on("/next", (301, {"Location": loopback.url("/final.png")}, b""))
    loopback.on("/final.png", image_reply(image_bytes(8, 8)))
    assert download_image(loopback.url("/start"), tmp_path, allow_private=True).is_file()
    assert [seen.path for seen in loopback.seen] == ["/start", "/next", "/final.png"]


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/x",
        "http://[::ffff:169.254.169.254]/x",
        "http://0.0.0.0/x",
        "file:///etc/passwd",
    ],
)
def test_redirect_to_a_forbidden_target_is_refused(target, loopback, tmp_path):
    loopback.on("/start", (302, {"Location": target}, b""))
    with pytest.raises(DownloadRefused):
        download_image(loopback.url("/start"), tmp_path, allow_private=True)
    assert [seen.path for seen in loopback.seen] == ["/start"]


def test_redirect_loops_stop(loopback, tmp_path):
    loopback.on("/loop", (302, {"Location": "/loop"}, b""))
    with pytest.raises(DownloadRefused, match="redirects more than 5 times"):
        download_image(loopback.url("/loop"), tmp_path, allow_private=True)
    assert len(loopback.seen) == 6


# ---- size caps, content and bombs ----------------------------------------------------------------

def test_declared_oversize_is_refused(loopback, tmp_path):
    loopback.on("/big.png", image_reply(image_bytes(300, 300, "BMP"), "image/png"))
    with pytest.raises(DownloadRefused, match="over the 10000 byte cap"):
        download_image(loopback.url("/big.png"), tmp_path, max_bytes=10_000, allow_private=True)


def test_undeclared_oversize_is_cut_off_while_streaming(loopback, tmp_path):
    loopback.on("/stream", (200, {"Content-Type": "image/png", "Content-Length": "omit"}, b"\0" * 300_000))
    with pytest.raises(DownloadRefused, match="over the 100000 byte cap"):
        download_image(loopback.url("/stream"), tmp_path, max_bytes=100_000, allow_private=True)


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>not an image</body></html>",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>',
        b"\x89PNG\r\n\x1a\n" + b"garbage" * 20,  # a PNG signature on a broken file
        b"",
    ],
)
def test_disguised_non_images_are_refused(body, loopback, tmp_path):
    loopback.on("/x.png", image_reply(body, "image/png"))
    with pytest.raises(DownloadRefused, match="not an image|not accepted"):
        download_image(loopback.url("/x.png"), tmp_path, allow_private=True)


def test_pixel_bombs_are_refused_before_decoding(loopback, tmp_path):
    buffer = io.BytesIO()
    Image.new("1", (3000, 3000)).save(buffer, format="PNG")  # 9 MP in a few KB
    assert len(buffer.getvalue()) < 20_000
    loopback.on("/bomb.png", image_reply(buffer.getvalue()))
    with pytest.raises(DownloadRefused, match="pixel cap"):
        download_image(loopback.url("/bomb.png"), tmp_path, allow_private=True, max_pixels=1_000_000)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size and holds no pixels: what a decompression bomb looks like up front."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [9000, 20000])  # over our cap; over Pillow's own bomb limit as well
def test_huge_claimed_sizes_are_refused_without_decoding(side, loopback, tmp_path):
    loopback.on("/huge.png", image_reply(png_header_only(side, side)))
    with pytest.raises(DownloadRefused, match="pixel cap|decompression bomb"):
        download_image(loopback.url("/huge.png"), tmp_path, allow_private=True)


def test_http_errors_name_the_url(loopback, tmp_path):
    loopback.on("/gone.png", json_reply({"error": "gone"}, 404))
    with pytest.raises(ProviderError, match="answered HTTP 404"):
        download_image(loopback.url("/gone.png"), tmp_path, allow_private=True)


def test_animated_gif_keeps_its_first_frame(loopback, tmp_path):
    frames = [Image.new("RGB", (12, 8), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    loopback.on("/a.gif", image_reply(buffer.getvalue(), "image/gif"))
    path = download_image(loopback.url("/a.gif"), tmp_path, allow_private=True)
    with Image.open(path) as image:
        red, green, blue = image.convert("RGB").getpixel((5, 4))
    assert red > 200 and blue < 60
    assert isinstance(path, Path)


# ---- TLS: connect to the vetted address, verify the certificate for the host name ---------------

def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_https_is_pinned_to_the_address_and_verified_for_the_name(tmp_path, monkeypatch):
    cert, key = self_signed(tmp_path, "localhost")
    server = Loopback(tls=(cert, key))
    try:
        server.on("/a.png", image_reply(image_bytes(8, 8)))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        # the connection goes to 127.0.0.1 by address, yet the certificate is checked for "localhost"
        path = download_image(server.url("/a.png", host="localhost"), tmp_path / "out", allow_private=True)
        assert path.is_file()
        assert server.to("/a.png")[0].headers["host"] == f"localhost:{server.port}"
        other, _ = self_signed(tmp_path, "elsewhere.test")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))  # a certificate we do not trust
        with pytest.raises(ProviderError, match="SSLError"):
            download_image(server.url("/a.png", host="localhost"), tmp_path / "out", allow_private=True)
    finally:
        server.close()
