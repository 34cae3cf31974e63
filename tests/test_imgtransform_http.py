"""Image transforms over HTTP (docs/image-transforms.md): format negotiation, the disk
cache (hit/miss, ETag/304, new versions, junk), and access (public, owner, signed URLs).

Real server, real clients: httpx on the web listener, boto3 on the S3 listener for the
objects (public-read ACLs, overwrites, restores of old versions). Cache behaviour is
read from the documented `X-Folio-Cache` header, never inferred from timing.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx
import pytest
from PIL import Image

from tests.conftest import make_objects_public, make_s3_client, new_bucket
from tests.folio_process import FolioProcess
from tests.imgtools import (
    BLUE,
    GREY,
    RED,
    api_error,
    decode,
    encode,
    get_img,
    image_of,
    img_client,
    img_path,
    is_blue,
    is_red,
    mean_colour,
    noisy_jpeg,
    red_square_scene,
)
from tests.web_client import Account, fresh_address

BROWSER_ACCEPT = "image/avif,image/webp,*/*"
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "AVIF": "image/avif"}


def make_account(folio: FolioProcess, prefix: str) -> Account:
    """A fresh account through the dashboard's sign-up (in-process, unlike `folio admin`),
    from a loopback address of its own so sign-up limits never see two tests as one."""
    email = f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"
    transport = httpx.HTTPTransport(local_address=fresh_address())
    with httpx.Client(base_url=folio.web_url, transport=transport, trust_env=False, timeout=30) as web:
        made = web.post("/api/auth/signup", json={"email": email, "password": f"pw-{uuid.uuid4().hex}"})
    assert made.status_code == 201, made.text
    body = made.json()
    return Account(email, body["accessKey"], body["secretKey"])


@pytest.fixture(scope="module")
def anon(folio: FolioProcess) -> Iterator[httpx.Client]:
    with img_client(folio) as client:
        yield client


@pytest.fixture
def public_bucket(s3, bucket: str) -> str:
    make_objects_public(s3, bucket)
    return bucket


def vary_names(response: httpx.Response) -> set[str]:
    return {part.strip().lower() for part in response.headers.get("vary", "").split(",") if part.strip()}


def assert_image_headers(response: httpx.Response, fmt: str) -> Image.Image:
    """The documented headers of every image answer, and the body decoded as `fmt`."""
    out = image_of(response)
    assert out.format == fmt, (out.format, fmt)
    assert response.headers["content-type"].split(";")[0] == CONTENT_TYPES[fmt]
    assert response.headers["cache-control"].replace(" ", "") == "public,max-age=604800"
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2, f"not a strong ETag: {etag}"
    assert response.headers["x-folio-cache"] in ("hit", "miss", "shared")
    return out


def cache_state(response: httpx.Response) -> str:
    return response.headers.get("x-folio-cache", "")


# ---------------------------------------------------------------- formats


@pytest.fixture
def jpeg_and_pngs(s3, public_bucket: str) -> str:
    scene = red_square_scene((400, 300), (40, 40, 120, 120))
    s3.put_object(Bucket=public_bucket, Key="photo.jpg", Body=encode(scene, "JPEG", quality=90))
    alpha = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    alpha.paste((255, 0, 0, 255), (100, 100, 300, 200))
    s3.put_object(Bucket=public_bucket, Key="logo.png", Body=encode(alpha, "PNG"))
    s3.put_object(Bucket=public_bucket, Key="opaque.png", Body=encode(scene, "PNG"))
    return public_bucket


@pytest.mark.parametrize(
    ("key", "accept", "fmt"),
    [
        ("photo.jpg", BROWSER_ACCEPT, "AVIF"),
        ("photo.jpg", "image/webp,*/*", "WEBP"),
        ("photo.jpg", "image/webp", "WEBP"),
        ("photo.jpg", "*/*", "JPEG"),
        ("logo.png", BROWSER_ACCEPT, "AVIF"),
        ("logo.png", "image/webp,*/*", "WEBP"),
        ("logo.png", "*/*", "PNG"),
        ("opaque.png", "*/*", "PNG"),
        # An Accept entry with q=0 is a refusal, not an acceptance.
        ("photo.jpg", "image/avif;q=0,image/webp,*/*", "WEBP"),
        ("photo.jpg", "image/avif;q=0,image/webp;q=0,*/*", "JPEG"),
    ],
)
def test_format_is_negotiated_from_accept_and_varies(
    anon: httpx.Client, jpeg_and_pngs: str, key: str, accept: str, fmt: str
) -> None:
    response = get_img(anon, jpeg_and_pngs, key, "w=200", accept=accept)
    out = assert_image_headers(response, fmt)
    assert out.size == (200, 150)
    assert "accept" in vary_names(response), response.headers.get("vary")
    if key == "logo.png" and fmt != "AVIF":
        # Transparency survives (AVIF alpha is checked in the geometry tests).
        assert out.mode in ("RGBA", "LA", "PA") and out.getpixel((5, 5))[-1] == 0


def _transparent_gif() -> bytes:
    img = Image.new("P", (120, 80), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    img.paste(0, (0, 0, 30, 80))  # the left quarter: index 0, transparent
    return encode(img, "GIF", transparency=0)


def _paletted_png_with_trns() -> bytes:
    img = Image.new("P", (120, 80), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    img.paste(0, (0, 0, 30, 80))
    return encode(img, "PNG", transparency=0)


RED_120x80 = Image.new("RGB", (120, 80), RED)
# name -> (source bytes, negotiated format for Accept: */*, whether the left quarter is transparent)
SOURCE_FORMATS = {
    "jpeg.jpg": (lambda: encode(RED_120x80, "JPEG", quality=95), "JPEG", False),
    "png.png": (lambda: encode(RED_120x80, "PNG"), "PNG", False),
    "webp.webp": (lambda: encode(RED_120x80, "WEBP", quality=95), "WEBP", False),
    # Other source formats are answered as JPEG, or PNG when they have transparency.
    "gif.gif": (lambda: encode(RED_120x80, "GIF"), "JPEG", False),
    "bmp.bmp": (lambda: encode(RED_120x80, "BMP"), "JPEG", False),
    "tiff.tiff": (lambda: encode(RED_120x80, "TIFF"), "JPEG", False),
    "avif.avif": (lambda: encode(RED_120x80, "AVIF", quality=95), "JPEG", False),
    "clear.gif": (_transparent_gif, "PNG", True),
    "paletted.png": (_paletted_png_with_trns, "PNG", True),
}


@pytest.mark.parametrize("key", sorted(SOURCE_FORMATS))
def test_every_documented_source_format_decodes(anon: httpx.Client, s3, public_bucket: str, key: str) -> None:
    make, fmt, transparent = SOURCE_FORMATS[key]
    s3.put_object(Bucket=public_bucket, Key=key, Body=make())
    response = get_img(anon, public_bucket, key, "w=60", accept="*/*")
    out = assert_image_headers(response, fmt)
    assert out.size == (60, 40)
    assert is_red(mean_colour(out, (25, 10, 55, 30))), mean_colour(out)
    if transparent:
        assert out.mode in ("RGBA", "LA", "PA", "P"), out.mode
        assert out.convert("RGBA").getpixel((3, 20))[3] == 0
    # And as an explicit WebP, whatever the source.
    webp = image_of(get_img(anon, public_bucket, key, "w=60&format=webp"))
    assert webp.format == "WEBP" and webp.size == (60, 40)


def test_sixteen_bit_and_grey_sources(anon: httpx.Client, s3, public_bucket: str) -> None:
    s3.put_object(
        Bucket=public_bucket, Key="deep.png", Body=encode(Image.new("I;16", (120, 80), 40000), "PNG")
    )
    grey_alpha = Image.new("LA", (120, 80), (200, 255))
    grey_alpha.paste((200, 0), (0, 0, 30, 80))
    s3.put_object(Bucket=public_bucket, Key="la.png", Body=encode(grey_alpha, "PNG"))
    deep = image_of(get_img(anon, public_bucket, "deep.png", "w=60"))
    assert deep.size == (60, 40)
    r, g, b = mean_colour(deep)
    assert abs(r - 40000 / 257) < 4 and abs(g - r) < 2 and abs(b - r) < 2, (r, g, b)
    la = image_of(get_img(anon, public_bucket, "la.png", "w=60&format=webp"))
    assert la.size == (60, 40)
    assert la.convert("RGBA").getpixel((3, 20))[3] == 0 and la.convert("RGBA").getpixel((40, 20))[3] == 255


def test_keys_with_spaces_and_unicode(anon: httpx.Client, s3, public_bucket: str) -> None:
    for key in ("a dir/ünïcödé name.png", "odd+chars (1)&x=y;#.png", "deep/er/still/x.png"):
        s3.put_object(Bucket=public_bucket, Key=key, Body=encode(RED_120x80, "PNG"))
        out = image_of(get_img(anon, public_bucket, key, "w=30"))
        assert out.size == (30, 20) and is_red(mean_colour(out)), key


def test_png_with_alpha_keeps_alpha_through_negotiation(anon: httpx.Client, jpeg_and_pngs: str) -> None:
    out = image_of(get_img(anon, jpeg_and_pngs, "logo.png", "", accept="*/*"))
    assert out.format == "PNG" and out.mode == "RGBA"
    assert out.getpixel((10, 10))[3] == 0 and out.getpixel((200, 150)) == (255, 0, 0, 255)


@pytest.mark.parametrize(
    ("query", "accept", "fmt"),
    [
        ("w=200&format=png", BROWSER_ACCEPT, "PNG"),
        ("w=200&format=webp", "*/*", "WEBP"),
        ("w=200&format=avif", "*/*", "AVIF"),
        ("w=200&format=jpeg", BROWSER_ACCEPT, "JPEG"),
        ("w=200&format=jpg", "image/webp", "JPEG"),
    ],
)
def test_explicit_format_wins_without_vary(
    anon: httpx.Client, jpeg_and_pngs: str, query: str, accept: str, fmt: str
) -> None:
    response = get_img(anon, jpeg_and_pngs, "photo.jpg", query, accept=accept)
    out = assert_image_headers(response, fmt)
    assert out.size == (200, 150)
    assert "accept" not in vary_names(response), response.headers.get("vary")


def test_negotiated_avif_beyond_avif_max_pixels_is_webp(anon: httpx.Client, jpeg_and_pngs: str) -> None:
    # 1200x900 = 1,080,000 pixels > avif_max_pixels (1,048,576): WebP instead.
    response = get_img(anon, jpeg_and_pngs, "photo.jpg", "w=1200&fit=contain", accept=BROWSER_ACCEPT)
    out = assert_image_headers(response, "WEBP")
    assert out.size == (1200, 900)
    assert "accept" in vary_names(response)
    # Just under it, AVIF again (1000x750 = 750,000).
    small = get_img(anon, jpeg_and_pngs, "photo.jpg", "w=1000&fit=contain", accept=BROWSER_ACCEPT)
    assert assert_image_headers(small, "AVIF").size == (1000, 750)


def test_quality_changes_the_encoding(anon: httpx.Client, s3, public_bucket: str) -> None:
    s3.put_object(Bucket=public_bucket, Key="noise.jpg", Body=noisy_jpeg((400, 300)))
    low = get_img(anon, public_bucket, "noise.jpg", "w=300&format=jpeg&q=5")
    high = get_img(anon, public_bucket, "noise.jpg", "w=300&format=jpeg&q=100")
    assert image_of(low).size == image_of(high).size == (300, 225)
    assert len(low.content) < len(high.content) / 2, (len(low.content), len(high.content))
    default = get_img(anon, public_bucket, "noise.jpg", "w=300&format=jpeg")
    assert len(low.content) < len(default.content) < len(high.content)


# ---------------------------------------------------------------- cache


def test_second_request_is_a_cache_hit_and_etag_gives_304(anon: httpx.Client, s3, public_bucket: str) -> None:
    s3.put_object(
        Bucket=public_bucket, Key="c.png", Body=encode(red_square_scene((300, 300), (0, 0, 100, 100)), "PNG")
    )
    first = get_img(anon, public_bucket, "c.png", "w=120&h=80&fit=cover")
    assert_image_headers(first, "PNG")
    assert cache_state(first) == "miss"
    second = get_img(anon, public_bucket, "c.png", "w=120&h=80&fit=cover")
    assert_image_headers(second, "PNG")
    assert cache_state(second) == "hit"
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]

    etag = first.headers["etag"]
    not_modified = get_img(anon, public_bucket, "c.png", "w=120&h=80&fit=cover", **{"If-None-Match": etag})
    assert not_modified.status_code == 304, not_modified.status_code
    assert not_modified.content == b""
    # Another ETag in If-None-Match: the full picture.
    other = get_img(anon, public_bucket, "c.png", "w=120&h=80&fit=cover", **{"If-None-Match": '"nope"'})
    assert other.status_code == 200 and other.content == first.content
    # A different transform has its own ETag.
    different = get_img(anon, public_bucket, "c.png", "w=60&h=40&fit=cover")
    assert image_of(different).size == (60, 40)
    assert different.headers["etag"] != etag
    assert (
        get_img(anon, public_bucket, "c.png", "w=60&h=40&fit=cover", **{"If-None-Match": etag}).status_code
        == 200
    )


def test_cache_key_uses_canonical_parameters_and_the_format_class(
    anon: httpx.Client, s3, public_bucket: str
) -> None:
    s3.put_object(
        Bucket=public_bucket, Key="k.jpg", Body=encode(red_square_scene((300, 200), (0, 0, 50, 50)), "JPEG")
    )
    assert cache_state(get_img(anon, public_bucket, "k.jpg", "w=100&h=100&fit=cover")) == "miss"
    # The same parameters in another order are the same transform.
    assert cache_state(get_img(anon, public_bucket, "k.jpg", "fit=cover&h=100&w=100")) == "hit"

    jpeg = get_img(anon, public_bucket, "k.jpg", "w=100", accept="*/*")
    webp = get_img(anon, public_bucket, "k.jpg", "w=100", accept="image/webp")
    assert_image_headers(jpeg, "JPEG")
    assert_image_headers(webp, "WEBP")
    assert cache_state(webp) == "miss", "a WebP answer is not the cached JPEG"
    assert webp.headers["etag"] != jpeg.headers["etag"]
    # Another Accept header that negotiates the same class: the same cache entry.
    again = get_img(anon, public_bucket, "k.jpg", "w=100", accept="text/html,image/webp,image/apng,*/*;q=0.8")
    assert_image_headers(again, "WEBP")
    assert cache_state(again) == "hit"
    assert again.content == webp.content


def test_a_new_version_of_the_source_is_never_served_stale(
    anon: httpx.Client, s3, public_bucket: str
) -> None:
    red = s3.put_object(
        Bucket=public_bucket, Key="v.png", Body=encode(Image.new("RGB", (64, 64), RED), "PNG")
    )
    query = "w=32"
    first = get_img(anon, public_bucket, "v.png", query)
    assert is_red(mean_colour(image_of(first)))
    assert cache_state(first) == "miss"
    assert cache_state(get_img(anon, public_bucket, "v.png", query)) == "hit"

    # Overwrite: a new version, a new picture, a new ETag.
    s3.put_object(Bucket=public_bucket, Key="v.png", Body=encode(Image.new("RGB", (64, 64), BLUE), "PNG"))
    second = get_img(anon, public_bucket, "v.png", query)
    assert is_blue(mean_colour(image_of(second))), mean_colour(image_of(second))
    assert cache_state(second) == "miss"
    assert second.headers["etag"] != first.headers["etag"]
    # The old ETag no longer matches.
    assert (
        get_img(anon, public_bucket, "v.png", query, **{"If-None-Match": first.headers["etag"]}).status_code
        == 200
    )

    # Restore the red version by copying it over the key (a new current version).
    s3.copy_object(
        Bucket=public_bucket,
        Key="v.png",
        CopySource={"Bucket": public_bucket, "Key": "v.png", "VersionId": red["VersionId"]},
    )
    third = get_img(anon, public_bucket, "v.png", query)
    assert is_red(mean_colour(image_of(third))), mean_colour(image_of(third))

    # Deleted (a delete marker): no picture at all, cached or not. The website policy lets
    # anyone GET objects but not list the bucket, so, as an anonymous S3 GET, the answer
    # does not tell whether the key exists: 403.
    s3.delete_object(Bucket=public_bucket, Key="v.png")
    api_error(get_img(anon, public_bucket, "v.png", query), 403, "AccessDenied")


@pytest.mark.parametrize(
    "junk",
    ["w=abc", "w=100&bogus=1", "w=100&w=100", "w=100&q=0", "w=0", "fit=stretch&w=100", "w=100&W=100"],
)
def test_junk_never_mints_a_cache_entry(anon: httpx.Client, s3, public_bucket: str, junk: str) -> None:
    s3.put_object(Bucket=public_bucket, Key="j.png", Body=encode(Image.new("RGB", (200, 200), GREY), "PNG"))
    # A valid transform next to the junk is cached...
    assert cache_state(get_img(anon, public_bucket, "j.png", "w=100")) == "miss"
    assert cache_state(get_img(anon, public_bucket, "j.png", "w=100")) == "hit"
    # ...but the junk is refused every time, never served from any cache entry.
    for _ in range(2):
        response = get_img(anon, public_bucket, "j.png", junk)
        api_error(response, 400, "InvalidParameter")
        assert cache_state(response) != "hit"


# ---------------------------------------------------------------- access


@pytest.fixture(scope="module")
def owner_account(folio: FolioProcess) -> Account:
    return make_account(folio, "img-owner")


@pytest.fixture(scope="module")
def other_account(folio: FolioProcess) -> Account:
    return make_account(folio, "img-other")


@pytest.fixture(scope="module")
def private(folio: FolioProcess, owner_account: Account) -> Iterator[str]:
    """A private bucket of `owner_account` with pic.png (200x100, red) and other.png (blue)."""
    owner_s3 = make_s3_client(folio, owner_account.access_key, owner_account.secret_key)
    for name in new_bucket(owner_s3, "imgpriv"):
        owner_s3.put_object(Bucket=name, Key="pic.png", Body=encode(Image.new("RGB", (200, 100), RED), "PNG"))
        owner_s3.put_object(
            Bucket=name, Key="other.png", Body=encode(Image.new("RGB", (200, 100), BLUE), "PNG")
        )
        owner_s3.put_object(
            Bucket=name, Key="dir/héllo wörld.png", Body=encode(Image.new("RGB", (200, 100), RED), "PNG")
        )
        owner_s3.put_object(
            Bucket=name,
            Key="shared.png",
            Body=encode(Image.new("RGB", (200, 100), RED), "PNG"),
            ACL="public-read",
        )
        yield name


def signed_image_url(base, bucket, key, params, access_key, secret_key, expires_in=3600):
    """The recipe of docs/image-transforms.md, verbatim."""
    query = {name: str(value) for name, value in params.items()}
    query["expires"] = str(int(time.time()) + expires_in)
    query["key_id"] = access_key
    canonical = "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in sorted(query.items())
    )
    path = f"/api/img/{bucket}/{key}"  # the key as text, not percent-encoded
    sig = hmac.new(secret_key.encode(), f"{path}\n{canonical}".encode(), hashlib.sha256).hexdigest()
    return f"{base}/api/img/{quote(bucket)}/{quote(key)}?{canonical}&sig={sig}"


def with_query(url: str, **changes: str) -> str:
    """`url` with some query values replaced (or added), everything else as it was."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(changes)
    return parts._replace(query=urlencode(query, quote_via=quote, safe="-_.~")).geturl()


def test_private_image_needs_auth_or_signature(
    folio: FolioProcess, anon: httpx.Client, private: str, owner_account: Account, other_account: Account
) -> None:
    api_error(get_img(anon, private, "pic.png", "w=50"), 403, "AccessDenied")
    # A missing object or bucket looks the same to a stranger.
    api_error(get_img(anon, private, "missing.png", "w=50"), 403, "AccessDenied")
    api_error(get_img(anon, f"nobucket-{uuid.uuid4().hex[:12]}", "pic.png", "w=50"), 403, "AccessDenied")

    with img_client(folio, owner_account.api_key) as owner:
        response = get_img(owner, private, "pic.png", "w=50")
        etag = response.headers["etag"]
        out = image_of(response)
        assert out.size == (50, 25) and is_red(mean_colour(out))
        assert get_img(owner, private, "pic.png", "w=50", **{"If-None-Match": etag}).status_code == 304
        api_error(get_img(owner, private, "missing.png", "w=50"), 404, "NoSuchKey")
    with img_client(folio, Authorization=f"Bearer {owner_account.api_key}") as bearer:
        assert image_of(get_img(bearer, private, "pic.png", "w=50")).size == (50, 25)
    with img_client(folio, other_account.api_key) as other:
        api_error(get_img(other, private, "pic.png", "w=50"), 403, "AccessDenied")
        api_error(get_img(other, private, "missing.png", "w=50"), 403, "AccessDenied")
    # The owner's cached answer does not leak to strangers either, not even as a 304.
    api_error(get_img(anon, private, "pic.png", "w=50"), 403, "AccessDenied")
    api_error(get_img(anon, private, "pic.png", "w=50", **{"If-None-Match": etag}), 403, "AccessDenied")
    # A public-read object of the private bucket is served to anyone.
    assert image_of(get_img(anon, private, "shared.png", "w=50")).size == (50, 25)


def test_signed_url_minted_by_the_api(
    folio: FolioProcess, anon: httpx.Client, private: str, owner_account: Account
) -> None:
    with img_client(folio, owner_account.api_key) as owner:
        minted = owner.post(
            "/api/img/sign",
            json={
                "bucket": private,
                "key": "pic.png",
                "params": {"w": 80, "format": "png"},
                "expiresIn": 300,
            },
        )
    assert minted.status_code == 200, minted.text
    body = minted.json()
    url = body["url"]
    assert abs(body["expires"] - (time.time() + 300)) < 30, body
    parts = urlsplit(url)
    assert parts.path == img_path(private, "pic.png")
    query = dict(parse_qsl(parts.query))
    assert query["key_id"] == owner_account.access_key
    assert query["expires"] == str(body["expires"])
    assert query["w"] == "80" and query["format"] == "png" and len(query["sig"]) == 64

    response = anon.get(f"{parts.path}?{parts.query}")
    out = image_of(response)
    assert out.format == "PNG" and out.size == (80, 40) and is_red(mean_colour(out))

    # Tampered: another width, another format, another object, another expiry, another signature.
    signed = f"{parts.path}?{parts.query}"
    for bad in (
        with_query(signed, w="81"),
        with_query(signed, format="webp"),
        with_query(signed, h="10"),
        signed.replace("/pic.png?", "/other.png?"),
        with_query(signed, expires=str(body["expires"] + 3600)),
        with_query(signed, sig=query["sig"][:-1] + ("0" if query["sig"][-1] != "0" else "1")),
        with_query(signed, sig=""),
    ):
        api_error(anon.get(bad), 403, "AccessDenied")


def test_sign_needs_authentication(anon: httpx.Client, private: str) -> None:
    response = anon.post("/api/img/sign", json={"bucket": private, "key": "pic.png", "params": {"w": 80}})
    assert response.status_code in (401, 403), response.status_code
    assert response.json()["error"]["code"]


def test_signed_url_computed_by_hand(
    folio: FolioProcess, anon: httpx.Client, private: str, owner_account: Account, other_account: Account
) -> None:
    def sign(key: str, params: dict, account: Account = owner_account, expires_in: int = 300) -> str:
        url = signed_image_url(
            folio.web_url, private, key, params, account.access_key, account.secret_key, expires_in
        )
        assert url.startswith(folio.web_url)
        return url[len(folio.web_url) :]

    out = image_of(anon.get(sign("pic.png", {"w": 60, "h": 60, "fit": "cover"})))
    assert out.size == (60, 60) and is_red(mean_colour(out))
    # A key with a space and non-ASCII letters: signed as text, requested percent-encoded.
    out = image_of(anon.get(sign("dir/héllo wörld.png", {"w": 40})))
    assert out.size == (40, 20)

    api_error(anon.get(sign("pic.png", {"w": 60}, expires_in=-30)), 403, "AccessDenied")
    # Another account's key pair, however well signed, does not open this bucket.
    api_error(anon.get(sign("pic.png", {"w": 60}, account=other_account)), 403, "AccessDenied")
    # A signature for one object does not open another.
    good = sign("pic.png", {"w": 60})
    api_error(anon.get(good.replace("/pic.png?", "/other.png?")), 403, "AccessDenied")
    api_error(anon.get(with_query(good, w="600")), 403, "AccessDenied")
    # A signature is no owner: a signed URL of a missing object tells nothing more than 403/404.
    missing = anon.get(sign("missing.png", {"w": 60}))
    assert missing.status_code in (403, 404), missing.status_code


def test_signed_url_stops_working_when_its_key_is_revoked(
    folio: FolioProcess, anon: httpx.Client, private: str, owner_account: Account
) -> None:
    with img_client(folio, owner_account.api_key) as owner:
        made = owner.post("/api/keys", json={"name": "img-signing"})
        assert made.status_code == 201, made.text
        key = made.json()
        url = signed_image_url(
            folio.web_url, private, "pic.png", {"w": 30}, key["accessKey"], key["secretKey"], 300
        )[len(folio.web_url) :]
        assert image_of(anon.get(url)).size == (30, 15)
        assert owner.delete("/api/keys", params={"id": key["accessKey"]}).status_code == 200
    # Even though that exact transform is now in the cache.
    api_error(anon.get(url), 403, "AccessDenied")


def test_another_account_cannot_mint_a_working_url(
    folio: FolioProcess, anon: httpx.Client, private: str, other_account: Account
) -> None:
    with img_client(folio, other_account.api_key) as other:
        minted = other.post("/api/img/sign", json={"bucket": private, "key": "pic.png", "params": {"w": 70}})
    if minted.status_code == 200:
        parts = urlsplit(minted.json()["url"])
        api_error(anon.get(f"{parts.path}?{parts.query}"), 403, "AccessDenied")
    else:
        assert minted.status_code in (403, 404), minted.text
        assert minted.json()["error"]["code"] in ("AccessDenied", "NoSuchBucket", "NotFound")


def test_decoded_bytes_are_really_the_transform(anon: httpx.Client, s3, public_bucket: str) -> None:
    """Not a copy of the source: a public object comes back resized and re-encoded."""
    source = encode(red_square_scene((300, 300), (0, 0, 150, 150)), "PNG")
    s3.put_object(Bucket=public_bucket, Key="t.png", Body=source)
    response = get_img(anon, public_bucket, "t.png", "w=30&format=webp")
    assert response.content != source
    out = decode(response.content)
    assert out.size == (30, 30) and out.format == "WEBP"
    assert is_red(mean_colour(out, (2, 2, 13, 13)))


def test_minted_url_for_a_key_with_spaces_and_unicode(
    folio: FolioProcess, anon: httpx.Client, private: str, owner_account: Account
) -> None:
    with img_client(folio, owner_account.api_key) as owner:
        minted = owner.post(
            "/api/img/sign",
            json={
                "bucket": private,
                "key": "dir/héllo wörld.png",
                "params": {"w": 50, "fit": "cover", "h": 50},
            },
        )
    assert minted.status_code == 200, minted.text
    parts = urlsplit(minted.json()["url"])
    out = image_of(anon.get(f"{parts.path}?{parts.query}"))
    assert out.size == (50, 50) and is_red(mean_colour(out))
    # Default lifetime: an hour.
    assert abs(minted.json()["expires"] - (time.time() + 3600)) < 30
