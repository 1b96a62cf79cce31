"""Image search adapters against loopback servers speaking each provider's wire format, the
ranking, and image.search's fallback across providers down to offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from reelgraph.nodes.pipeline.images import image_search
from reelgraph.nodes.providers.safe_download import ALLOW_PRIVATE_ENV
from reelgraph.nodes.providers.search_base import ImageCandidate, looks_watermarked, rank, score
from reelgraph.nodes.providers.search_stock import search_pexels, search_pixabay
from reelgraph.nodes.providers.search_web import search_brave, search_google, search_serpapi
from reelgraph.nodes.types import NodeContext, NodeFailure
from reelgraph.tests.loopback_http import Loopback, image_bytes, image_reply, json_reply

KEYS = ("PEXELS_API_KEY", "PIXABAY_API_KEY", "BRAVE_API_KEY", "SERPAPI_API_KEY", "GOOGLE_CSE_KEY", "GOOGLE_CSE_ID")
W, H = 64, 112  # the requested frame in these tests (portrait)


@pytest.fixture(autouse=True)
def web(monkeypatch: pytest.MonkeyPatch, loopback: Loopback) -> Loopback:  # noqa: F811
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    for name in ("PEXELS", "PIXABAY", "BRAVE", "SERPAPI", "GOOGLE_CSE"):
        monkeypatch.setenv(f"REELGRAPH_{name}_BASE_URL", loopback.url())
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")  # the "internet" here is loopback
    # images the results point at
    loopback.on("/img/portrait.jpg", image_reply(image_bytes(72, 128, "JPEG"), "image/jpeg"))
    loopback.on("/img/landscape.jpg", image_reply(image_bytes(128, 72, "JPEG"), "image/jpeg"))
    loopback.on("/img/small.png", image_reply(image_bytes(20, 30)))
    return loopback


def search(tmp_path: Path, query: str = "mountain lake", provider: str = "auto", folder: str = "") -> dict[str, Any]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return image_search.run(NodeContext(work, "img", None), query=query, provider=provider, folder=folder, width=W, height=H)


def search_failure(tmp_path: Path, **inputs: Any) -> str:
    with pytest.raises(NodeFailure) as caught:
        search(tmp_path, **inputs)
    return str(caught.value)


# ---- wire formats ----------------------------------------------------------------------------------

def pexels_photo(web: Loopback, path: str, width: int, height: int, alt: str) -> dict[str, Any]:
    original = web.url(path)
    return {
        "id": 2014422, "width": width, "height": height, "url": "https://www.pexels.com/photo/lake-2014422/",
        "photographer": "Joey Farina", "photographer_url": "https://www.pexels.com/@joey", "photographer_id": 680589,
        "avg_color": "#978E82", "liked": False, "alt": alt,
        "src": {"original": original, "large2x": original + "?w=940", "large": original + "?h=650", "medium": original + "?h=350",
                "small": original + "?h=130", "portrait": original + "?fit=crop", "landscape": original + "?fit=crop&h=627",
                "tiny": original + "?h=200"},
    }


def test_pexels(tmp_path, web, monkeypatch):
    monkeypatch.setenv("PEXELS_API_KEY", "pexels-key")
    web.on("/v1/search", json_reply({
        "page": 1, "per_page": 20, "total_results": 2, "next_page": None,
        "photos": [pexels_photo(web, "/img/landscape.jpg", 6000, 4000, "Wide lake"),
                   pexels_photo(web, "/img/portrait.jpg", 3000, 5333, "Tall lake")],
    }))
    candidates = search_pexels("mountain lake", W, H)
    (seen,) = web.to("/v1/search")
    assert seen.headers["authorization"] == "pexels-key"  # the bare key, no scheme
    assert seen.query["query"] == "mountain lake" and seen.query["orientation"] == "portrait"
    assert [(c.title, c.width, c.height, c.license) for c in candidates] == [
        ("Wide lake", 6000, 4000, "Pexels License"), ("Tall lake", 3000, 5333, "Pexels License")]
    result = search(tmp_path, provider="pexels")
    assert result["metadata"] == {
        "title": "Tall lake", "source_url": web.url("/img/portrait.jpg"), "page_url": "https://www.pexels.com/photo/lake-2014422/",
        "license": "Pexels License", "width": 72, "height": 128, "provider": "pexels", "query": "mountain lake",
    }  # the portrait photo wins for a portrait frame; the size is the downloaded image's
    with Image.open(result["image"]) as image:
        assert image.size == (72, 128)


def test_pixabay(web, monkeypatch):
    monkeypatch.setenv("PIXABAY_API_KEY", "pixabay-key")
    web.on("/api/", json_reply({"total": 1, "totalHits": 1, "hits": [{
        "id": 195893, "pageURL": "https://pixabay.com/en/blossom-bloom-flower-195893/", "type": "photo",
        "tags": "blossom, bloom, flower", "previewURL": web.url("/img/small.png"), "webformatURL": web.url("/img/small.png"),
        "largeImageURL": web.url("/img/portrait.jpg"), "imageWidth": 4000, "imageHeight": 6000, "imageSize": 3000000,
        "views": 7671, "downloads": 6439, "likes": 5, "comments": 2, "user_id": 48777, "user": "Josch13",
    }]}))
    (candidate,) = search_pixabay("flower " * 30, W, H)
    (seen,) = web.to("/api/")
    assert seen.query["key"] == "pixabay-key" and seen.query["image_type"] == "photo"
    assert seen.query["orientation"] == "vertical" and len(seen.query["q"]) <= 100
    # largeImageURL is the original scaled to 1280 on its long side
    assert (candidate.width, candidate.height) == (853, 1280)
    assert candidate.title == "blossom, bloom, flower" and candidate.license == "Pixabay Content License"


def test_pixabay_errors_are_plain_text(tmp_path, web, monkeypatch):
    monkeypatch.setenv("PIXABAY_API_KEY", "wrong")
    web.on("/api/", (400, {"Content-Type": "text/html"}, b"[ERROR 400] Invalid or missing API key ([key] parameter)."))
    message = search_failure(tmp_path, provider="pixabay")
    assert message == "pixabay: HTTP 400: [ERROR 400] Invalid or missing API key ([key] parameter)."
    assert web.to("/api/")[0].query["key"] == "wrong" and "wrong" not in message


def test_brave(web, monkeypatch):
    monkeypatch.setenv("BRAVE_API_KEY", "brave-key")
    web.on("/res/v1/images/search", json_reply({"type": "images", "query": {"original": "mountain lake", "spellcheck_off": True},
        "results": [{
            "type": "image_result", "title": "Lake at dawn", "url": "https://example.org/lake", "source": "example.org",
            "page_fetched": "2024-05-01T00:00:00Z", "thumbnail": {"src": "https://imgs.search.brave.com/t.jpg", "width": 500, "height": 889},
            "properties": {"url": web.url("/img/portrait.jpg"), "placeholder": "https://imgs.search.brave.com/p.jpg", "width": 1080, "height": 1920},
            "meta_url": {"scheme": "https", "netloc": "example.org", "hostname": "example.org", "path": "› lake"},
        }]}))
    (candidate,) = search_brave("mountain lake", W, H)
    (seen,) = web.to("/res/v1/images/search")
    assert seen.headers["x-subscription-token"] == "brave-key" and seen.headers["accept"] == "application/json"
    assert seen.query["q"] == "mountain lake" and seen.query["safesearch"] == "strict"
    assert (candidate.url, candidate.page_url, candidate.width, candidate.height) == (
        web.url("/img/portrait.jpg"), "https://example.org/lake", 1080, 1920)


def test_serpapi(web, monkeypatch):
    monkeypatch.setenv("SERPAPI_API_KEY", "serp-key")
    web.on("/search.json", json_reply({
        "search_metadata": {"id": "1", "status": "Success"},
        "search_parameters": {"engine": "google_images", "q": "mountain lake"},
        "images_results": [{
            "position": 1, "thumbnail": "https://serpapi.com/t.jpeg", "related_content_id": "abc", "source": "Wikipedia",
            "title": "Moraine Lake", "link": "https://en.wikipedia.org/wiki/Moraine_Lake", "original": web.url("/img/portrait.jpg"),
            "original_width": 2000, "original_height": 3000, "is_product": False,
        }],
    }))
    (candidate,) = search_serpapi("mountain lake", W, H)
    (seen,) = web.to("/search.json")
    assert seen.query == {"engine": "google_images", "q": "mountain lake", "api_key": "serp-key"}
    assert (candidate.title, candidate.page_url, candidate.width) == ("Moraine Lake", "https://en.wikipedia.org/wiki/Moraine_Lake", 2000)
    # SerpApi answers "no results" as an error field in a 200 reply
    web.on("/search.json", json_reply({"search_metadata": {"status": "Success"}, "error": "Google hasn't returned any results for this query."}))
    assert search_serpapi("zzzz", W, H) == []
    web.on("/search.json", json_reply({"error": "Invalid API key. Your API key should be here: https://serpapi.com/manage-api-key"}, 401))
    with pytest.raises(NodeFailure, match="serpapi: HTTP 401: Invalid API key"):
        search_serpapi("x", W, H)


def test_google_custom_search(web, monkeypatch):
    monkeypatch.setenv("GOOGLE_CSE_KEY", "g-key")
    monkeypatch.setenv("GOOGLE_CSE_ID", "cx-id")
    web.on("/customsearch/v1", json_reply({
        "kind": "customsearch#search", "searchInformation": {"totalResults": "1"},
        "items": [{
            "kind": "customsearch#result", "title": "Lake - Wikipedia", "htmlTitle": "Lake", "link": web.url("/img/landscape.jpg"),
            "displayLink": "en.wikipedia.org", "snippet": "Lake", "mime": "image/jpeg", "fileFormat": "image/jpeg",
            "image": {"contextLink": "https://en.wikipedia.org/wiki/Lake", "height": 800, "width": 1200, "byteSize": 200000,
                      "thumbnailLink": "https://encrypted-tbn0.gstatic.com/images?q=x", "thumbnailHeight": 100, "thumbnailWidth": 150},
        }],
    }))
    (candidate,) = search_google("mountain lake", W, H)
    (seen,) = web.to("/customsearch/v1")
    assert seen.query["key"] == "g-key" and seen.query["cx"] == "cx-id" and seen.query["searchType"] == "image"
    assert (candidate.page_url, candidate.width, candidate.height) == ("https://en.wikipedia.org/wiki/Lake", 1200, 800)
    web.on("/customsearch/v1", json_reply({"error": {"code": 403, "message": "Custom Search JSON API has not been used in project 1.",
                                                     "errors": [{"reason": "accessNotConfigured"}], "status": "PERMISSION_DENIED"}}, 403))
    with pytest.raises(NodeFailure, match="google: HTTP 403: Custom Search JSON API has not been used"):
        search_google("x", W, H)


def test_rate_limits_are_retried(web, monkeypatch):
    monkeypatch.setenv("PEXELS_API_KEY", "k")
    web.on("/v1/search", (429, {"Retry-After": "0", "Content-Type": "text/plain"}, b"Too Many Requests"),
           json_reply({"photos": [pexels_photo(web, "/img/portrait.jpg", 100, 200, "x")]}))
    assert len(search_pexels("lake", W, H)) == 1
    assert len(web.to("/v1/search")) == 2


# ---- ranking ----------------------------------------------------------------------------------------

def candidate(width: int, height: int, url: str = "https://cdn.example.org/a.jpg", title: str = "") -> ImageCandidate:
    return ImageCandidate(url, "https://example.org/", title, "unknown", width, height, "test")


def test_ranking_prefers_resolution_aspect_fit_and_no_watermarks():
    portrait_big = candidate(1080, 1920, "https://cdn.example.org/big.jpg")
    portrait_small = candidate(270, 480, "https://cdn.example.org/small.jpg")
    landscape_big = candidate(3840, 2160, "https://cdn.example.org/wide.jpg")
    stock = candidate(2160, 3840, "https://image.shutterstock.com/z/stock-photo-lake.jpg")
    getty = candidate(2160, 3840, title="Lake at dawn - Getty Images")
    unknown = candidate(0, 0, "https://cdn.example.org/unknown.jpg")
    ranked = rank([stock, landscape_big, unknown, portrait_small, getty, portrait_big], 1080, 1920)
    assert ranked[0] == portrait_big
    landscape_hd = candidate(1920, 1080, "https://cdn.example.org/hd.jpg")
    assert score(landscape_hd, 1080, 1920) < score(portrait_small, 1080, 1920)  # a crop keeps a third of it, small
    assert set(ranked[-2:]) == {stock, getty} and looks_watermarked(stock) and looks_watermarked(getty)
    assert score(portrait_big, 1080, 1920) == 1.0
    assert score(landscape_big, 1080, 1920) < score(portrait_big, 1080, 1920)
    assert score(portrait_small, 1080, 1920) < score(portrait_big, 1080, 1920)
    assert score(stock, 1080, 1920) < score(unknown, 1080, 1920) < score(portrait_big, 1080, 1920)
    # duplicates and non-http URLs are dropped; ties keep the provider's order
    twin = candidate(1080, 1920, "https://cdn.example.org/twin.jpg")
    assert rank([portrait_big, twin, portrait_big, candidate(1080, 1920, "data:image/png;base64,AA")], 1080, 1920) == [portrait_big, twin]


def test_a_watermarked_result_loses_to_a_clean_one_in_the_node(tmp_path, web, monkeypatch):
    monkeypatch.setenv("BRAVE_API_KEY", "k")
    web.on("/img/istock-lake.jpg", image_reply(image_bytes(72, 128, "JPEG", color=(1, 2, 3)), "image/jpeg"))
    web.on("/res/v1/images/search", json_reply({"results": [
        {"title": "Lake stock photo", "url": "https://www.istockphoto.com/photo/lake", "properties": {"url": web.url("/img/istock-lake.jpg"), "width": 2000, "height": 3556}},
        {"title": "Lake", "url": "https://example.org/lake", "properties": {"url": web.url("/img/landscape.jpg"), "width": 1200, "height": 675}},
    ]}))
    assert search(tmp_path, provider="brave")["metadata"]["source_url"] == web.url("/img/landscape.jpg")


# ---- the node: downloads, fallbacks, SSRF in results -------------------------------------------------

def test_unsafe_and_broken_results_are_skipped_for_the_next_candidate(tmp_path, web, monkeypatch):
    monkeypatch.setenv("BRAVE_API_KEY", "k")
    web.on("/img/fake.jpg", (200, {"Content-Type": "image/jpeg"}, b"<html>not an image</html>"))
    results = [
        {"title": "metadata", "url": "https://x/", "properties": {"url": "http://169.254.169.254/latest/meta-data/iam.jpg", "width": 1080, "height": 1920}},
        {"title": "ftp", "url": "https://x/", "properties": {"url": "ftp://example.org/a.jpg", "width": 1080, "height": 1920}},
        {"title": "fake", "url": "https://x/", "properties": {"url": web.url("/img/fake.jpg"), "width": 1080, "height": 1920}},
        {"title": "missing", "url": "https://x/", "properties": {"url": web.url("/img/missing.jpg"), "width": 1080, "height": 1920}},
        {"title": "good", "url": "https://x/", "properties": {"url": web.url("/img/small.png"), "width": 20, "height": 30}},
    ]
    web.on("/res/v1/images/search", json_reply({"results": results}))
    metadata = search(tmp_path, provider="brave")["metadata"]
    assert metadata["title"] == "good" and (metadata["width"], metadata["height"]) == (20, 30)
    assert not any(seen.path.startswith("/latest") for seen in web.seen)


def test_auto_falls_back_across_providers_in_order(tmp_path, web, monkeypatch):
    for name, value in (("PEXELS_API_KEY", "a"), ("PIXABAY_API_KEY", "b"), ("BRAVE_API_KEY", "c"), ("SERPAPI_API_KEY", "d")):
        monkeypatch.setenv(name, value)
    web.on("/v1/search", json_reply({"code": "unauthorized"}, 401))  # pexels fails
    web.on("/api/", json_reply({"total": 0, "totalHits": 0, "hits": []}))  # pixabay finds nothing
    web.on("/res/v1/images/search", json_reply({"results": [  # brave's only image is gone
        {"title": "gone", "url": "https://x/", "properties": {"url": web.url("/img/gone.jpg")}}]}))
    web.on("/search.json", json_reply({"images_results": [
        {"title": "Found", "link": "https://example.org/p", "original": web.url("/img/portrait.jpg"), "original_width": 72, "original_height": 128}]}))
    result = search(tmp_path, provider="auto")
    assert result["metadata"]["provider"] == "serpapi" and result["metadata"]["title"] == "Found"
    api_calls = [seen.path for seen in web.seen if not seen.path.startswith("/img/portrait")]
    assert api_calls == ["/v1/search", "/api/", "/res/v1/images/search", "/img/gone.jpg", "/search.json"]
    assert not web.to("/customsearch/v1")  # no Google keys: never tried


def test_auto_without_keys_or_results_ends_offline(tmp_path, web, monkeypatch):
    result = search(tmp_path, provider="auto", query="quiet harbour")
    assert web.seen == []
    assert result["metadata"]["provider"] == "generated"
    monkeypatch.setenv("PEXELS_API_KEY", "a")
    web.on("/v1/search", json_reply({"photos": []}))
    assert search(tmp_path, provider="auto")["metadata"]["provider"] == "generated"


def test_an_explicit_provider_fails_plainly(tmp_path, web, monkeypatch):
    assert search_failure(tmp_path, provider="pexels") == "pexels: set the environment variable PEXELS_API_KEY to use this provider"
    assert search_failure(tmp_path, provider="google") == "google: set the environment variable GOOGLE_CSE_KEY to use this provider"
    monkeypatch.setenv("PEXELS_API_KEY", "a")
    web.on("/v1/search", json_reply({"photos": []}))
    assert search_failure(tmp_path, provider="pexels") == "pexels: no usable image for query 'mountain lake' (0 results)"
    assert search_failure(tmp_path, provider="bing") == (
        "input 'provider': 'bing' is not one of offline, pexels, pixabay, brave, serpapi, google, auto")
