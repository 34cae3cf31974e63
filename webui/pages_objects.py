"""The object browser (`/buckets/{name}`): being built; its routes join the app here."""

from __future__ import annotations

from starlette.routing import BaseRoute

from restapi.files import RestServices


def routes(services: RestServices) -> list[BaseRoute]:
    return []
