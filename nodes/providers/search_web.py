"""Web image search (Brave, SerpAPI's Google Images, Google Custom Search): broad coverage,
unknown licences, so the ranking's watermark heuristics matter most here."""

from __future__ import annotations

from .http import ProviderError, base_url, request, secret
from .search_base import SEARCH_COUNT, ImageCandidate, SearchProvider, as_int, response_json

WEB_LICENSE = "unknown (web result: check the page for rights)"
BRAVE_KEY_ENV = "BRAVE_API_KEY"
BRAVE_BASE_URL_ENV = "REELGRAPH_BRAVE_BASE_URL"
SERPAPI_KEY_ENV = "SERPAPI_API_KEY"
SERPAPI_BASE_URL_ENV = "REELGRAPH_SERPAPI_BASE_URL"
GOOGLE_KEY_ENV = "GOOGLE_CSE_KEY"
GOOGLE_ID_ENV = "GOOGLE_CSE_ID"
GOOGLE_BASE_URL_ENV = "REELGRAPH_GOOGLE_CSE_BASE_URL"


def search_brave(query: str, width: int, height: int) -> list[ImageCandidate]:
    """GET /res/v1/images/search with the X-Subscription-Token header."""
    root = base_url(BRAVE_BASE_URL_ENV, "https://api.search.brave.com")
    reply = request(
        "brave",
        "GET",
        f"{root}/res/v1/images/search",
        headers={"X-Subscription-Token": secret(BRAVE_KEY_ENV, "brave"), "Accept": "application/json"},
        params={"q": query, "count": SEARCH_COUNT, "safesearch": "strict"},
        timeout=30,
    )
    found = []
    for result in response_json("brave", reply).get("results") or []:
        properties = result.get("properties") if isinstance(result, dict) else None
        if not isinstance(properties, dict):
            continue
        found.append(
            ImageCandidate(
                url=str(properties.get("url") or ""),
                page_url=str(result.get("url") or ""),
                title=str(result.get("title") or query),
                license=WEB_LICENSE,
                width=as_int(properties.get("width")),
                height=as_int(properties.get("height")),
                provider="brave",
            )
        )
    return found


def search_serpapi(query: str, width: int, height: int) -> list[ImageCandidate]:
    """GET /search.json?engine=google_images with the key as ``api_key``."""
    root = base_url(SERPAPI_BASE_URL_ENV, "https://serpapi.com")
    reply = request(
        "serpapi",
        "GET",
        f"{root}/search.json",
        params={"engine": "google_images", "q": query, "api_key": secret(SERPAPI_KEY_ENV, "serpapi")},
        timeout=60,
    )
    document = response_json("serpapi", reply)
    if document.get("error") and not document.get("images_results"):
        message = str(document["error"])
        if "hasn't returned any results" in message:  # SerpApi reports "no results" as an error
            return []
        raise ProviderError(f"serpapi: {message[:300]}")
    found = []
    for image in document.get("images_results") or []:
        if not isinstance(image, dict):
            continue
        found.append(
            ImageCandidate(
                url=str(image.get("original") or ""),
                page_url=str(image.get("link") or ""),
                title=str(image.get("title") or query),
                license=WEB_LICENSE,
                width=as_int(image.get("original_width")),
                height=as_int(image.get("original_height")),
                provider="serpapi",
            )
        )
    return found


def search_google(query: str, width: int, height: int) -> list[ImageCandidate]:
    """GET /customsearch/v1?searchType=image with ``key`` and the engine id ``cx``."""
    root = base_url(GOOGLE_BASE_URL_ENV, "https://www.googleapis.com")
    reply = request(
        "google",
        "GET",
        f"{root}/customsearch/v1",
        params={
            "key": secret(GOOGLE_KEY_ENV, "google"),
            "cx": secret(GOOGLE_ID_ENV, "google"),
            "q": query,
            "searchType": "image",
            "num": 10,  # the API's maximum per page
            "safe": "active",
        },
        timeout=30,
    )
    found = []
    for item in response_json("google", reply).get("items") or []:
        if not isinstance(item, dict):
            continue
        image = item.get("image") if isinstance(item.get("image"), dict) else {}
        found.append(
            ImageCandidate(
                url=str(item.get("link") or ""),
                page_url=str(image.get("contextLink") or ""),
                title=str(item.get("title") or query),
                license=WEB_LICENSE,
                width=as_int(image.get("width")),
                height=as_int(image.get("height")),
                provider="google",
            )
        )
    return found


BRAVE = SearchProvider("brave", (BRAVE_KEY_ENV,), search_brave)
SERPAPI = SearchProvider("serpapi", (SERPAPI_KEY_ENV,), search_serpapi)
GOOGLE = SearchProvider("google", (GOOGLE_KEY_ENV, GOOGLE_ID_ENV), search_google)
