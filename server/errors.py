"""The one error shape every response uses: ``{"error": {"code", "message", "errors": [...]}}``.

``errors`` lists individual problems as ``{kind, path, message, node}`` — for recipes exactly the
list ``reelgraph validate --json`` prints — and is empty when there is nothing more to say.
Unexpected exceptions are logged with their traceback and answered with a plain 500.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ..graphs.errors import RecipeInvalid

log = logging.getLogger("reelgraph.server")


class ProblemModel(BaseModel):
    kind: str
    path: str
    message: str
    node: str | None = None


class ErrorDetail(BaseModel):
    code: str
    message: str
    errors: list[ProblemModel] = []


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: Iterable[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = [dict(e) for e in errors]
        self.headers = dict(headers or {})


def problem(kind: str, path: str, message: str, node: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "path": path, "message": message, "node": node}


def invalid_recipe(exc: RecipeInvalid) -> ApiError:
    count = len(exc.errors)
    return ApiError(
        422,
        "invalid_recipe",
        f"the recipe has {count} error{'s' if count != 1 else ''}",
        [error.to_json() for error in exc.errors],
    )


def error_response(status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "errors": errors or []}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 413: "too_large", 415: "unsupported_media_type", 416: "range_not_satisfiable",
    422: "invalid_request", 429: "rate_limited",
}

# Error responses every /v1 route may give; listed in the OpenAPI document.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": _HTTP_CODES[code].replace("_", " ")}
    for code in (400, 401, 413, 422, 429)
}


def _path_of(loc: Iterable[Any]) -> str:
    parts = [str(part) for part in loc]
    return ".".join(parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = list(exc.errors())
        if any(d.get("type") == "json_invalid" for d in details):
            cause = next(d for d in details if d.get("type") == "json_invalid").get("ctx", {}).get("error", "")
            return error_response(400, "bad_json", f"the request body is not valid JSON: {cause}".rstrip(": "),
                                  [problem("bad_json", "body", f"not valid JSON: {cause}")])
        errors = [problem("bad_request", _path_of(d.get("loc", ())), str(d.get("msg", "invalid"))) for d in details]
        return error_response(422, "invalid_request", "the request does not match the API schema", errors)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        return error_response(exc.status_code, code, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.error("internal error %s on %s %s", incident, request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal", f"internal error (incident {incident}); see the server log")
