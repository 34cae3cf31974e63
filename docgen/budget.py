"""The document API's per-minute budget of an account (its plan's `docgen_per_minute`):
requests per account per calendar minute, reported as the X-RateLimit-* headers. One
budget per DocService, spent by the /v1 and /v2 endpoints and by the dashboard's
template previews alike, so a preview is a request of the account like any other."""

from __future__ import annotations

import time

UNLIMITED_REPORTED = 1000000


class MinuteBudget:
    """Requests per account per calendar minute (the X-RateLimit-* figures)."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    def take(self, account_id: str, limit: int) -> tuple[bool, dict[str, str]]:
        now = time.time()
        window = int(now // 60)
        start, used = self._windows.get(account_id, (window, 0))
        if start != window:
            start, used = window, 0
        allowed = not limit or used < limit
        if allowed:
            used += 1
        if len(self._windows) > 100000:
            self._windows.clear()
        self._windows[account_id] = (start, used)
        shown = limit or UNLIMITED_REPORTED
        return allowed, {
            "x-ratelimit-limit": str(shown),
            "x-ratelimit-remaining": str(max(0, shown - used)),
            "x-ratelimit-reset": str((window + 1) * 60),
        }


def retry_after(headers: dict[str, str]) -> int:
    """Whole seconds until the budget's minute ends (Retry-After; never 0)."""
    return max(1, int(headers["x-ratelimit-reset"]) - int(time.time()))
