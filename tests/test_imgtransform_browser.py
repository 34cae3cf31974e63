"""The seed's `<img>` example in a real browser: headless Chromium (tests/browser.py, Playwright)
loads a page from a small loopback HTTP server whose `<img>` tags point at Folio's web
listener, `/api/img/...?w=200&h=200&fit=cover&gravity=sm`, exactly as
docs/image-transforms.md shows it. The page is on another origin than Folio, as a site
embedding its pictures would be; the browser sends its own Accept header and decodes
whatever format Folio negotiates.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.browser import Browser, Page, open_page, page_log, running_chromium
from tests.folio_process import FolioProcess
from tests.imgtools import encode, get_img, image_of, img_client, img_url, subject_scene
from tests.web_client import page_server

PAGES: dict[str, bytes] = {}


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """Serves the pages the tests put in PAGES; nothing else."""
    with page_server(PAGES) as origin:
        yield origin


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with running_chromium() as browser:
        yield browser


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh tab (its own context); each test loads its page with `page.goto`."""
    with open_page(chromium) as page:
        yield page


def page_with_images(name: str, sources: dict[str, str]) -> str:
    """Publish a page whose <img id=...> tags load `sources`; return its path."""
    tags = "\n".join(f'<img id="{id_}" src="{src}" alt="{id_}">' for id_, src in sources.items())
    PAGES[f"/{name}"] = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>folio images</title></head>
<body>{tags}</body></html>
""".encode()
    return f"/{name}"


# Waits for each image (load or error) and reports what the browser made of it.
IMAGE_STATE_JS = """
(async () => {
  const out = {};
  for (const img of document.images) {
    let decoded = true;
    try { await img.decode(); } catch (e) { decoded = false; }
    out[img.id] = {complete: img.complete, w: img.naturalWidth, h: img.naturalHeight, decoded};
  }
  return out;
})()
"""


def image_states(page: Page) -> dict:
    return page.evaluate(IMAGE_STATE_JS)


def test_seed_img_example_renders_200x200_in_chromium(
    page: Page, page_origin: str, folio: FolioProcess, s3, bucket: str
) -> None:
    hero = subject_scene((1200, 800), (850, 100, 1050, 300))
    s3.put_object(
        Bucket=bucket, Key="photos/hero.jpg", Body=encode(hero, "JPEG", quality=90), ACL="public-read"
    )
    src = f"{folio.web_url}{img_url(bucket, 'photos/hero.jpg', 'w=200&h=200&fit=cover&gravity=sm')}"
    path = page_with_images("seed.html", {"hero": src})

    page.goto(f"{page_origin}{path}")
    assert page.evaluate("location.origin") == page_origin
    states = image_states(page)

    assert states["hero"] == {"complete": True, "w": 200, "h": 200, "decoded": True}, states
    # The page's network log: one image request to /api/img, answered 200.
    fetched = [(e.method, e.resource_type, e.status) for e in page_log(page).requests_to("/api/img/")]
    assert fetched == [("GET", "image", 200)], page_log(page)
    # The browser's request negotiated a format and filled the cache: the same URL
    # with Chromium's Accept is now a hit (the browser got the transform, not an error).
    with img_client(folio) as anon:
        again = get_img(
            anon,
            bucket,
            "photos/hero.jpg",
            "w=200&h=200&fit=cover&gravity=sm",
            accept="image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
        )
        assert image_of(again).size == (200, 200)
        assert again.headers["x-folio-cache"] == "hit"


def signed_path(folio: FolioProcess, bucket: str, key: str, params: dict) -> str:
    query = {name: str(value) for name, value in params.items()}
    query["expires"] = str(int(time.time()) + 300)
    query["key_id"] = folio.access_key
    canonical = "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in sorted(query.items())
    )
    sig = hmac.new(
        folio.secret_key.encode(), f"/api/img/{bucket}/{key}\n{canonical}".encode(), hashlib.sha256
    ).hexdigest()
    return f"/api/img/{quote(bucket)}/{quote(key)}?{canonical}&sig={sig}"


def test_private_image_loads_in_img_only_when_signed(
    page: Page, page_origin: str, folio: FolioProcess, s3, bucket: str
) -> None:
    s3.put_object(
        Bucket=bucket, Key="secret.png", Body=encode(subject_scene((400, 300), (50, 50, 150, 150)), "PNG")
    )
    with httpx.Client(base_url=folio.web_url, trust_env=False, timeout=30) as owner:
        minted = owner.post(
            "/api/img/sign",
            headers={"X-API-Key": f"{folio.access_key}:{folio.secret_key}"},
            json={"bucket": bucket, "key": "secret.png", "params": {"w": 120}, "expiresIn": 300},
        )
    assert minted.status_code == 200, minted.text
    path = page_with_images(
        "private.html",
        {
            "minted": minted.json()["url"],
            "byhand": folio.web_url
            + signed_path(folio, bucket, "secret.png", {"w": 100, "h": 100, "fit": "cover"}),
            "unsigned": f"{folio.web_url}{img_url(bucket, 'secret.png', 'w=120')}",
        },
    )
    page.goto(f"{page_origin}{path}")
    states = image_states(page)

    assert states["minted"] == {"complete": True, "w": 120, "h": 90, "decoded": True}, states
    assert states["byhand"] == {"complete": True, "w": 100, "h": 100, "decoded": True}, states
    # Refused (403 JSON): the browser has nothing to draw.
    assert states["unsigned"]["complete"] is True and states["unsigned"]["decoded"] is False, states
    assert states["unsigned"]["w"] == 0, states
