"""Request rate limits: one bucket per (client, class), refilled at the class's rate
with a burst of one second's worth, kept as the time its next token is due (GCRA, the
"virtual scheduling" form of a token bucket). In memory on purpose: a limit is about
this process's load, and losing it on restart loses nothing of value. With several
nodes (or `--workers`) each enforces its share: the rate and burst divided by the live
nodes (core/nodes.py), so that together they allow the plan's rate.

Requests over the rate are shaped before they are refused, as nginx's `limit_req`
with a burst: a request whose token is due within `max_wait` seconds reserves that
token at once (so waiting requests are served in the order they came and the
sustained rate stays exactly the class's) and sleeps until it is due, holding no
worker; one whose token is due later is refused. Reservations are spaced 1/rate
apart, so at most max_wait x rate + 1 requests of a key wait at once, and
`max_waiting` caps the total over all keys."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from core.nodes import live_node_count

# Request classes and the plan setting that gives each one's rate.
PLAN_RATE_FIELDS = {"list": "list_per_second", "read": "read_per_second", "write": "write_per_second"}

# Buckets idle this long are full again (even the slow login ones) and can be forgotten.
_IDLE_SECONDS = 300.0
_SWEEP_AT = 10000
# Requests sleeping for their token at once, over every key: each is a coroutine and its
# request's buffers, and a flood of keys (anonymous callers from many addresses) must
# not turn into unbounded memory. Past it, requests that would wait are refused.
MAX_WAITING = 10000


@dataclass(frozen=True)
class Decision:
    """`allowed`: go ahead after `wait` seconds (0.0: now). Refused: `wait` is how long
    until a request of this key would be admitted again (for Retry-After)."""

    allowed: bool
    wait: float


# The common answer, shared rather than built per request (the limiter is on every request's path).
ADMITTED = Decision(True, 0.0)


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_waiting: int = MAX_WAITING) -> None:
        self.clock = clock
        self.max_waiting = max_waiting
        self.waiting = 0
        # Totals for /metrics (read at scrape time): requests that waited for their token,
        # the seconds they waited, and requests refused. Touched only off the fast path.
        self.waits = 0
        self.wait_seconds = 0.0
        self.refusals = 0
        # key -> when the token after the last one given out is due (the theoretical
        # arrival time); a bucket is full once that is not in the future, and it is never
        # pushed back to before now: an idle key gets one burst, not a burst and the
        # tolerance again (it did, and a key seen a second before could take nearly twice
        # its burst at once).
        self._due: dict[Hashable, float] = {}

    def reserve(
        self, key: Hashable, rate: float, burst: float | None = None, max_wait: float = 0.0
    ) -> Decision:
        """Take one token for `key` at `rate` per second (0: unlimited), from a bucket of
        `burst` tokens (one second's worth by default), waiting at most `max_wait`
        seconds for it. An allowed decision has reserved its token: the caller must not
        ask again for the same request."""
        if rate <= 0:
            return ADMITTED
        nodes = live_node_count()
        if nodes > 1:  # several nodes (or workers) serve the account: each allows its share
            rate /= nodes
            burst = burst / nodes if burst is not None else None
        interval = 1.0 / rate
        tolerance = (max(burst if burst is not None else rate, 1.0) - 1.0) * interval
        now = self.clock()
        due = self._due.get(key)
        if due is None:
            if len(self._due) >= _SWEEP_AT:
                self._sweep(now)
            due = now
        start = max(now, due - tolerance)
        wait = start - now
        if wait > 0 and (wait > max_wait or self.waiting >= self.max_waiting):
            # Refused, and nothing reserved: a retry is admitted once its wait is back
            # within the bound (at once, with no bound, when the token is due).
            self.refusals += 1
            return Decision(False, max(wait - max_wait, 0.001))
        self._due[key] = max(due, now) + interval
        if wait > 0:
            self.waits += 1
            self.wait_seconds += wait
            return Decision(True, wait)
        return ADMITTED

    def acquire(self, key: Hashable, rate: float, burst: float | None = None) -> float:
        """Take a token now or not at all: 0.0 when allowed, else the seconds until a
        token is available (login throttling and other limits that never wait)."""
        decision = self.reserve(key, rate, burst)
        return 0.0 if decision.allowed else decision.wait

    async def admit(
        self, key: Hashable, rate: float, burst: float | None = None, max_wait: float = 0.0
    ) -> float:
        """Reserve a token and sleep until it is due (the event loop serves others
        meanwhile). Returns 0.0 once admitted, else the seconds for Retry-After."""
        decision = self.reserve(key, rate, burst, max_wait)
        if not decision.allowed:
            return decision.wait
        if decision.wait > 0:
            self.waiting += 1
            try:
                await asyncio.sleep(decision.wait)
            finally:
                self.waiting -= 1
        return 0.0

    def _sweep(self, now: float) -> None:
        idle = [key for key, due in self._due.items() if now - due > _IDLE_SECONDS]
        for key in idle:
            del self._due[key]


def retry_after_header(wait_seconds: float) -> str:
    """Retry-After takes whole seconds: round up, never 0."""
    return str(max(1, math.ceil(wait_seconds)))
