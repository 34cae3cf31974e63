"""What `folio serve` wraps around its two applications (server/cli.py `_serve`):

    S3:  Observe -> ConcurrencyLimit -> S3App
    web: Observe -> MetricsEndpoint (/metrics) -> ConcurrencyLimit -> Starlette app

The observer is outermost so that every request is counted and logged, the refused
ones too; /metrics and /healthz are answered whatever the load (a scrape and a load
balancer's check must see an overloaded server as it is)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.requests import cookie_parser

from core.config import Config
from core.doc_keys import DocKeys
from core.ratelimit import RateLimiter
from imgtransform.cache import DiskCache
from restapi.dashboard import COOKIE
from restapi.files import RestServices
from server.access_log import AccessLog
from server.metrics import PATH as METRICS_PATH
from server.metrics import MetricsEndpoint, build_registry
from server.observe import (
    ASGIApp,
    Observe,
    RequestStats,
    Scope,
    describe_s3,
    s3_operation,
    web_describer,
    web_operation,
)
from server.overload import ConcurrencyLimit, s3_slow_down, web_busy
from server.runtime import Runtime

HEALTH_PATHS = ("/healthz", "/healthz/documents", METRICS_PATH)


class Observability:
    def __init__(
        self,
        config: Config,
        runtime: Runtime,
        limiter: RateLimiter,
        rest: RestServices,
        image_cache: DiskCache | None,
    ) -> None:
        self.config = config
        self.rest = rest
        self.doc_keys: DocKeys = runtime.doc_keys
        self.stats = RequestStats()
        self.limits: dict[str, ConcurrencyLimit | None] = {"s3": None, "web": None}
        target = config.server.access_log
        self.access_log = AccessLog(target) if target else None
        self.registry = build_registry(
            self.stats,
            self.limits,
            runtime.db,
            Path(config.storage.data_dir),
            limiter,
            runtime.store.quotas,
            image_cache,
            runtime.store.integrity,
        )

    def _bounded(
        self, listener: str, app: ASGIApp, refusal: Callable, exempt: tuple[str, ...] = ()
    ) -> ASGIApp:
        bound = self.config.server.max_concurrent_requests
        if bound <= 0:
            return app
        limit = ConcurrencyLimit(app, bound, refusal, exempt)
        self.limits[listener] = limit
        return limit

    def s3(self, app: ASGIApp) -> ASGIApp:
        bounded = self._bounded("s3", app, s3_slow_down)
        return Observe(bounded, "s3", self.stats, s3_operation, describe_s3, self.access_log)

    def web(self, app: ASGIApp) -> ASGIApp:
        bounded = self._bounded("web", app, web_busy, HEALTH_PATHS)
        endpoint = MetricsEndpoint(bounded, self.registry, self.config.server.metrics_token)
        return Observe(
            endpoint,
            "web",
            self.stats,
            web_operation,
            web_describer(self._identify),
            self.access_log,
            add_request_id=True,
        )

    def _identify(self, scope: Scope, principal: str | None) -> tuple[str | None, str | None]:
        """(account id, principal) of a web request, for its access-log line only."""
        if principal == "dashboard":
            cookies = cookie_parser(_header(scope, b"cookie"))
            token = cookies.get(COOKIE)
            return (self.rest.sessions.account_of(token) if token else None), principal
        if principal:
            found = self.rest.accounts.lookup_key(principal)  # cached: the request's own check read it
            return (found[0].id if found else None), principal
        api_key = _header(scope, b"x-api-key").strip()
        if api_key.startswith("cl-"):  # a document API key: never logged whole, it is the secret
            account = self.doc_keys.account_of(api_key)
            return (account.id if account else None), f"cl-...{api_key[-4:]}"
        return None, None

    def wrap(self, apps: list[tuple[ASGIApp, str]]) -> list[tuple[ASGIApp, str]]:
        """`folio serve`'s (application, listen address) pairs, each wrapped for its listener."""
        s3_listen = self.config.server.s3_listen
        return [(self.s3(app) if listen == s3_listen else self.web(app), listen) for app, listen in apps]

    def close(self) -> None:
        if self.access_log is not None:
            self.access_log.close()


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""
