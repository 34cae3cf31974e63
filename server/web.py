"""The web listener's application: health now; the REST, image and document
services mount here as they are built."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def build_web_app() -> Starlette:
    async def healthz(_request: Request) -> JSONResponse:
        # Served only once the store is open: the listener starts after recovery.
        return JSONResponse({"status": "ok"})

    async def not_found(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": "NotFound", "message": "No such endpoint.", "details": {}}}, 404
        )

    return Starlette(routes=[Route("/healthz", healthz)], exception_handlers={404: not_found})
