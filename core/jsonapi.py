"""The JSON APIs' error format (seed 001): `{"error": {"code", "message", "details"}}`
with the matching status, raised as `ApiError` anywhere below a JSON handler."""

from __future__ import annotations

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


def bad_request(message: str, **details: Any) -> ApiError:
    return ApiError(400, "BadRequest", message, details)


def not_found(message: str = "No such file.", **details: Any) -> ApiError:
    return ApiError(404, "NotFound", message, details)
