"""Stock photo libraries with clear licences: Pexels and Pixabay."""

from __future__ import annotations

from .http import base_url, request, secret
from .search_base import SEARCH_COUNT, ImageCandidate, SearchProvider, as_int, orientation, response_json

PEXELS_KEY_ENV = "PEXELS_API_KEY"
PEXELS_BASE_URL_ENV = "REELGRAPH_PEXELS_BASE_URL"
PIXABAY_KEY_ENV = "PIXABAY_API_KEY"
PIXABAY_BASE_URL_ENV = "REELGRAPH_PIXABAY_BASE_URL"
PIXABAY_LARGE_SIDE = 1280  # largeImageURL is scaled to this longest side


def search_pexels(query: str, width: int, height: int) -> list[ImageCandidate]:
    """GET /v1/search with the key as the Authorization header (no scheme)."""
    root = base_url(PEXELS_BASE_URL_ENV, "https://api.pexels.com")
    reply = request(
        "pexels",
        "GET",
        f"{root}/v1/search",
        headers={"Authorization": secret(PEXELS_KEY_ENV, "pexels")},
        params={"query": query, "per_page": SEARCH_COUNT, "orientation": orientation(width, height)},
        timeout=30,
    )
    found = []
    for photo in response_json("pexels", reply).get("photos") or []:
        if not isinstance(photo, dict) or not isinstance(photo.get("src"), dict):
            continue
        photographer = str(photo.get("photographer") or "").strip()
        found.append(
            ImageCandidate(
                url=str(photo["src"].get("original") or ""),
                page_url=str(photo.get("url") or ""),
                title=str(photo.get("alt") or "").strip() or (f"Photo by {photographer}" if photographer else query),
                license="Pexels License",
                width=as_int(photo.get("width")),
                height=as_int(photo.get("height")),
                provider="pexels",
            )
        )
    return found


def search_pixabay(query: str, width: int, height: int) -> list[ImageCandidate]:
    """GET /api/ with the key as the ``key`` query parameter."""
    root = base_url(PIXABAY_BASE_URL_ENV, "https://pixabay.com")
    shape = {"portrait": "vertical", "landscape": "horizontal"}.get(orientation(width, height), "all")
    reply = request(
        "pixabay",
        "GET",
        f"{root}/api/",
        params={
            "key": secret(PIXABAY_KEY_ENV, "pixabay"),
            "q": query[:100],  # the API's limit
            "image_type": "photo",
            "orientation": shape,
            "safesearch": "true",
            "per_page": SEARCH_COUNT,
        },
        timeout=30,
    )
    found = []
    for hit in response_json("pixabay", reply).get("hits") or []:
        if not isinstance(hit, dict):
            continue
        full_width, full_height = as_int(hit.get("imageWidth")), as_int(hit.get("imageHeight"))
        scale = min(1.0, PIXABAY_LARGE_SIDE / max(full_width, full_height, 1))
        found.append(
            ImageCandidate(
                url=str(hit.get("largeImageURL") or ""),
                page_url=str(hit.get("pageURL") or ""),
                title=str(hit.get("tags") or query),
                license="Pixabay Content License",
                width=round(full_width * scale),
                height=round(full_height * scale),
                provider="pixabay",
            )
        )
    return found


PEXELS = SearchProvider("pexels", (PEXELS_KEY_ENV,), search_pexels)
PIXABAY = SearchProvider("pixabay", (PIXABAY_KEY_ENV,), search_pixabay)
