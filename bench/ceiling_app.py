"""The framework ceiling: a trivial Starlette app that looks enough like S3 for the load generator.

Run with `uvicorn bench.ceiling_app:app --loop uvloop --http httptools`. PUT reads and drops
the body; GET answers a fixed body from memory, its size picked by the key's first path
segment (`get4k/`, `get1m/`, `get256m/`); GET on a bucket answers fixed ListObjectsV2 pages
of 1,000 keys, 10,000 in all, the continuation token being the next page's number. No
signature checks, no storage: whatever Folio adds on top of this is Folio's own cost.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

KIB, MIB = 1 << 10, 1 << 20
LIST_PAGES, LIST_PAGE_SIZE = 10, 1000
_ETAG = '"d41d8cd98f00b204e9800998ecf8427e"'

_BODIES = {
    prefix: os.urandom(size) for prefix, size in (("get4k", 4 * KIB), ("get1m", MIB), ("get256m", 256 * MIB))
}


def _body_for(key: str) -> bytes:
    return _BODIES.get(key.split("/", 1)[0], _BODIES["get4k"])


def _list_page(bucket: str, page: int) -> bytes:
    truncated = page + 1 < LIST_PAGES
    contents = "".join(
        f"<Contents><Key>list/{i:07d}</Key><LastModified>2025-01-01T00:00:00.000Z</LastModified>"
        f"<ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>0</Size>"
        f"<StorageClass>STANDARD</StorageClass></Contents>"
        for i in range(page * LIST_PAGE_SIZE, (page + 1) * LIST_PAGE_SIZE)
    )
    token = f"<NextContinuationToken>{page + 1}</NextContinuationToken>" if truncated else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{bucket}</Name><Prefix></Prefix><KeyCount>{LIST_PAGE_SIZE}</KeyCount>"
        f"<MaxKeys>{LIST_PAGE_SIZE}</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
        f"{token}{contents}</ListBucketResult>"
    ).encode()


_PAGES = [_list_page("bench-list", page) for page in range(LIST_PAGES)]


async def bucket(request: Request) -> Response:
    if request.method == "GET":
        token = request.query_params.get("continuation-token", "0")
        page = int(token) if token.isdigit() and int(token) < LIST_PAGES else 0
        return Response(_PAGES[page], media_type="application/xml")
    if request.method == "DELETE":
        return Response(status_code=204)
    return Response(headers={"Location": request.url.path})


async def obj(request: Request) -> Response:
    if request.method == "PUT":
        async for _ in request.stream():
            pass
        return Response(headers={"ETag": _ETAG})
    if request.method == "DELETE":
        return Response(status_code=204)
    body = _body_for(request.path_params["key"])
    return Response(body, media_type="application/octet-stream", headers={"ETag": _ETAG})


app = Starlette(
    routes=[
        Route("/{bucket}", bucket, methods=["GET", "PUT", "DELETE", "HEAD"]),
        Route("/{bucket}/{key:path}", obj, methods=["GET", "PUT", "DELETE", "HEAD"]),
    ]
)
