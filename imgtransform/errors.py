"""What a transform answers when it cannot finish (the status and code of the JSON
error), and the deadline every step of it checks: shared by the image decoder and
the PDF page rasterizer."""

from __future__ import annotations

import time


class ImageError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: dict[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise timed_out()


def timed_out() -> ImageError:
    return ImageError(503, "TransformTimeout", "The transform took too long.")
