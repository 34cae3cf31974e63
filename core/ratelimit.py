"""Request rate limits: one token bucket per (client, class), refilled at the
class's rate with a burst of one second's worth. In memory on purpose: a limit is
about this process's load, and losing it on restart loses nothing of value."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable

# Request classes and the plan setting that gives each one's rate.
PLAN_RATE_FIELDS = {"list": "list_per_second", "read": "read_per_second", "write": "write_per_second"}

# Buckets idle this long are full again (even the slow login ones) and can be forgotten.
_IDLE_SECONDS = 300.0
_SWEEP_AT = 10000


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # key -> [tokens, last refill time]
        self._buckets: dict[Hashable, list[float]] = {}

    def acquire(self, key: Hashable, rate: float, burst: float | None = None) -> float:
        """Take one token for `key` at `rate` per second (0: unlimited), from a bucket
        of `burst` tokens (one second's worth by default). Returns 0.0 when allowed,
        else the seconds until a token is available."""
        if rate <= 0:
            return 0.0
        capacity = max(burst if burst is not None else rate, 1.0)
        now = self.clock()
        state = self._buckets.get(key)
        if state is None:
            if len(self._buckets) >= _SWEEP_AT:
                self._sweep(now)
            self._buckets[key] = [capacity - 1.0, now]
            return 0.0
        tokens = min(capacity, state[0] + (now - state[1]) * rate)
        state[1] = now
        if tokens >= 1.0:
            state[0] = tokens - 1.0
            return 0.0
        state[0] = tokens
        return (1.0 - tokens) / rate

    def _sweep(self, now: float) -> None:
        idle = [key for key, (_tokens, last) in self._buckets.items() if now - last > _IDLE_SECONDS]
        for key in idle:
            del self._buckets[key]


def retry_after_header(wait_seconds: float) -> str:
    """Retry-After takes whole seconds: round up, never 0."""
    return str(max(1, math.ceil(wait_seconds)))
