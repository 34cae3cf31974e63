"""The JSON APIs' error format (seed 001): `{"error": {"code", "message", "details"}}`
with the matching status, raised as `ApiError` anywhere below a JSON handler."""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"error": {"code": self.code, "message": self.message, "details": self.details}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def too_many_requests(wait_seconds: float, message: str | None = None) -> ApiError:
    """429 with Retry-After (whole seconds, never 0)."""
    return ApiError(
        429,
        "TooManyRequests",
        message or "Rate limit exceeded. Retry after the duration in the Retry-After header.",
        headers={"retry-after": str(max(1, math.ceil(wait_seconds)))},
    )


def bad_request(message: str, **details: Any) -> ApiError:
    return ApiError(400, "BadRequest", message, details)


def not_found(message: str = "No such file.", **details: Any) -> ApiError:
    return ApiError(404, "NotFound", message, details)


def storage_full() -> ApiError:
    """507: the server's disk is full; nothing of the write was kept, reads and deletes work."""
    return ApiError(507, "StorageFull", "The server's storage is full. Delete files or retry later.")
