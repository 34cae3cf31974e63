"""The web listener's application: health, the REST file API, the dashboard API,
image transforms, the document API (/v1, /v2) and the dashboard's pages (`/`)."""

from __future__ import annotations

import logging
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.db import DatabaseUnavailable
from core.jsonapi import ApiError, storage_full
from docgen import api as documents
from docgen.service import DocService
from imgtransform import service as images
from imgtransform.service import ImageService
from restapi import buckets, dashboard, files, image_urls, shares, versions, webhooks
from restapi.files import RestServices
from s3proxy.store.errors import is_storage_full
from s3proxy.store.integrity import CorruptObject
from server.header_guard import HEADER_GUARD
from webui import app as webui_app

log = logging.getLogger("folio.web")


def build_web_app(services: RestServices, image_service: ImageService, doc_service: DocService) -> Starlette:
    async def healthz(_request: Request) -> JSONResponse:
        # Served only once the store is open: the listener starts after recovery. "status"
        # stays "ok" on damage (the process serves); the integrity figures say what a scrub
        # or a read found (s3proxy/store/integrity.py).
        # "pid": which process answered (with `--workers N`, each worker is one).
        # "blobs": the blob store's backend and, for an upstream S3, whether it answered a
        # cheap request and how fast.
        blobs = await services.store.blobs.health()
        database = services.store.db.health()
        if not database["ok"]:  # 503, so that a load balancer takes this node out
            return JSONResponse(
                {"status": "unavailable", "pid": os.getpid(), "database": database, "blobs": blobs}, 503
            )
        return JSONResponse(
            {
                "status": "ok",
                "pid": os.getpid(),
                "integrity": services.store.integrity.health(),
                "database": database,
                "blobs": blobs,
            }
        )

    async def document_engines(_request: Request) -> JSONResponse:
        # The document engines' state: worker processes, and the browser (running,
        # launches, crashes) when Chromium is installed.
        return JSONResponse(doc_service.health())

    async def not_found(request: Request, _exc: Exception) -> Response:
        if webui_app.wants_page(request):
            return webui_app.page_not_found(request, services)
        return ApiError(404, "NotFound", "No such endpoint.").response()

    async def not_allowed(_request: Request, _exc: Exception) -> JSONResponse:
        return ApiError(405, "MethodNotAllowed", "This endpoint does not take that method.").response()

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        # PostgreSQL is down or out of connections (core/db_postgres.py answers at once):
        # a state of the deployment, not a bug, so one line and no traceback.
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        error = ApiError(503, "ServiceUnavailable", "The metadata database is unreachable. Retry shortly.")
        response = error.response()
        response.headers["Retry-After"] = "1"
        return response

    async def failed(request: Request, exc: Exception) -> JSONResponse:
        if is_storage_full(exc):  # a write outside the store (sessions, keys, jobs) on a full disk
            log.warning("%s %s: storage full: %s", request.method, request.url.path, exc)
            return storage_full().response()
        if isinstance(exc, CorruptObject):
            # Damaged bytes found before any answer: the store logged which object and
            # marked it; a traceback would add nothing.
            log.error("%s %s: %s", request.method, request.url.path, exc)
        else:
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return ApiError(
            500, "InternalError", "An unexpected error occurred. Retry with exponential backoff."
        ).response()

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/healthz/documents", document_engines),
            *files.routes(services),
            *dashboard.routes(services),
            *webhooks.routes(services),
            *versions.routes(services),
            *buckets.routes(services),
            *shares.routes(services),
            *image_urls.routes(services),
            *images.routes(image_service),
            *documents.routes(doc_service),
            # Last: the dashboard's pages and static files (nothing below imports webui).
            *webui_app.routes(services),
        ],
        exception_handlers={
            404: not_found,
            405: not_allowed,
            DatabaseUnavailable: unavailable,
            Exception: failed,
        },
        middleware=[HEADER_GUARD],
    )
    # The dashboard's document pages reach the document service through the app's state.
    app.state.doc_service = doc_service
    return app
