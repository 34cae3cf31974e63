"""Image transforms under hostile or heavy input (docs/image-transforms.md, "Limits and
errors"): bad parameters, files that are not images, broken images, decompression bombs,
a full transform queue, and identical requests arriving together.

Every refusal must be the documented 4xx JSON error, never a 500, and the server's
memory must stay bounded while it refuses bombs (read from /proc/<pid>/status of the
server process the tests started). The busy test runs its own server with one worker
and a queue of one.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from tests.conftest import TEST_CONFIG, make_objects_public, make_s3_client, new_bucket
from tests.folio_process import FolioProcess
from tests.imgtools import (
    GREY,
    api_error,
    decode,
    encode,
    get_img,
    image_of,
    img_client,
    img_url,
    noisy_jpeg,
    png_bomb,
    png_with_claimed_size,
    proc_status_kb,
    smooth_picture,
)


@pytest.fixture(scope="module")
def limits_bucket(s3) -> Iterator[str]:
    for name in new_bucket(s3, "imglimits"):
        make_objects_public(s3, name)
        s3.put_object(Bucket=name, Key="ok.png", Body=encode(Image.new("RGB", (300, 200), GREY), "PNG"))
        yield name


@pytest.fixture(scope="module")
def anon(folio: FolioProcess) -> Iterator[httpx.Client]:
    with img_client(folio) as client:
        yield client


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("w=0", "w"),
        ("w=100000", "w"),
        ("w=4097", "w"),
        ("w=-5", "w"),
        ("w=abc", "w"),
        ("w=", "w"),
        ("h=0", "h"),
        ("h=5000", "h"),
        ("q=0", "q"),
        ("q=101", "q"),
        ("rotate=45", "rotate"),
        ("rotate=-90", "rotate"),
        ("dpr=10", "dpr"),
        ("dpr=0", "dpr"),
        ("dpr=0.5", "dpr"),
        ("dpr=nan", "dpr"),
        ("fit=stretch", "fit"),
        ("gravity=nw", "gravity"),
        ("format=gif", "format"),
        ("format=svg", "format"),
        ("blur=101", "blur"),
        ("sharpen=11", "sharpen"),
        ("w=100&frobnicate=1", "frobnicate"),
        ("width=100", "width"),
        ("w=100&w=100", "w"),
        ("w=100&h=50&w=200", "w"),
        ("fit=cover&fit=pad&w=10&h=10", "fit"),
    ],
)
def test_bad_parameter_is_a_400_naming_it(
    anon: httpx.Client, limits_bucket: str, query: str, parameter: str
) -> None:
    response = get_img(anon, limits_bucket, "ok.png", query)
    error = api_error(response, 400, "InvalidParameter")
    assert error["details"]["parameter"] == parameter, error
    assert "x-folio-cache" not in response.headers or response.headers["x-folio-cache"] != "hit"


def test_bad_parameter_is_refused_before_any_pixel_is_read(
    anon: httpx.Client, s3, limits_bucket: str
) -> None:
    """The source is a (header) bomb and a broken file: a parameter error comes first,
    from the query alone."""
    s3.put_object(Bucket=limits_bucket, Key="claims-huge.png", Body=png_with_claimed_size(20000, 20000))
    s3.put_object(Bucket=limits_bucket, Key="garbage.png", Body=b"not a picture" * 10)
    for key in ("claims-huge.png", "garbage.png"):
        for _ in range(2):
            error = api_error(get_img(anon, limits_bucket, key, "w=100&rotate=45"), 400, "InvalidParameter")
            assert error["details"]["parameter"] == "rotate", error


# ---------------------------------------------------------------- files that are not (good) images


SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
    b'<rect width="100" height="100" fill="red"/></svg>\n'
)


@pytest.mark.parametrize(
    ("key", "body", "content_type"),
    [
        ("drawing.svg", SVG, "image/svg+xml"),
        ("notes.txt", b"just some text, not a picture\n" * 20, "text/plain"),
        ("fake.png", b"this is text under an image name\n" * 20, "image/png"),
        ("empty.jpg", b"", "image/jpeg"),
    ],
)
def test_not_an_image_is_415(
    anon: httpx.Client, s3, limits_bucket: str, key: str, body: bytes, content_type: str
) -> None:
    s3.put_object(Bucket=limits_bucket, Key=key, Body=body, ContentType=content_type)
    for query in ("w=100", ""):
        response = get_img(anon, limits_bucket, key, query)
        if key == "empty.jpg" and response.status_code == 422:
            # An empty file is arguably a broken JPEG as much as no image at all.
            api_error(response, 422, "CorruptImage")
        else:
            api_error(response, 415, "UnsupportedImage")


def test_truncated_jpeg_is_422_corrupt(anon: httpx.Client, s3, limits_bucket: str) -> None:
    whole = noisy_jpeg((400, 300))
    truncated = whole[: len(whole) * 2 // 5]
    # Its header still parses: only decoding finds the damage.
    assert Image.open(io.BytesIO(truncated)).size == (400, 300)
    s3.put_object(Bucket=limits_bucket, Key="cut.jpg", Body=truncated, ContentType="image/jpeg")
    for query in ("w=100", "w=100&format=png", ""):
        api_error(get_img(anon, limits_bucket, "cut.jpg", query), 422, "CorruptImage")


def test_decompression_bombs_are_refused_from_the_header_with_bounded_memory(
    folio: FolioProcess, anon: httpx.Client, s3, limits_bucket: str
) -> None:
    bombs = {
        # 20,000 x 20,000 1-bit: 400 megapixels, ~50 KB of PNG.
        "bomb-1bit.png": png_bomb(20000, 20000, bit_depth=1),
        # A real small PNG whose header claims 20,000 x 20,000.
        "bomb-header.png": png_with_claimed_size(20000, 20000),
        # 81 megapixels of 8-bit grey: over Folio's 50 MP, under Pillow's own bomb limit.
        "bomb-81mp.png": png_bomb(9000, 9000, bit_depth=8),
        # Few pixels, but a side over max_source_side (16,384).
        "bomb-long.png": png_bomb(20000, 8, bit_depth=8),
    }
    for key, body in bombs.items():
        assert len(body) < 200_000, (key, len(body))
        s3.put_object(Bucket=limits_bucket, Key=key, Body=body, ContentType="image/png")

    pid = folio.proc.pid
    rss_before = proc_status_kb(pid, "VmRSS")
    try:  # reset the peak RSS (VmHWM) so it measures only what follows
        with open(f"/proc/{pid}/clear_refs", "w") as clear:
            clear.write("5")
        peak_reset = True
    except OSError:
        peak_reset = False
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(proc_status_kb(pid, "VmRSS"))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for key in bombs:
            for query in ("w=100", "w=50&h=50&fit=cover&format=webp", ""):
                api_error(get_img(anon, limits_bucket, key, query), 422, "ImageTooLarge")
    finally:
        stop.set()
        sampler.join(5)
    rss_after = proc_status_kb(pid, "VmRSS")
    peak = max([rss_after, *samples] + ([proc_status_kb(pid, "VmHWM")] if peak_reset else []))
    growth_mb = (rss_after - rss_before) / 1024
    peak_mb = (peak - rss_before) / 1024
    assert growth_mb < 200, f"RSS grew by {growth_mb:.0f} MB refusing bombs"
    assert peak_mb < 200, f"RSS peaked {peak_mb:.0f} MB above its start while refusing bombs"
    # And the server still works.
    assert image_of(get_img(anon, limits_bucket, "ok.png", "w=30")).size == (30, 20)


# ---------------------------------------------------------------- identical concurrent requests


def fire_together(server: FolioProcess, urls: list[str], headers: dict | None = None) -> list[httpx.Response]:
    """Send every request at (nearly) the same moment, each on its own connection."""
    barrier = threading.Barrier(len(urls))

    def one(url: str) -> httpx.Response:
        with img_client(server, **(headers or {})) as client:
            barrier.wait(10)
            return client.get(url)

    with ThreadPoolExecutor(len(urls)) as pool:
        return list(pool.map(one, urls))


def test_identical_concurrent_requests_are_computed_once(folio: FolioProcess, s3, limits_bucket: str) -> None:
    s3.put_object(
        Bucket=limits_bucket, Key="big.jpg", Body=encode(smooth_picture((2400, 1800)), "JPEG", quality=85)
    )
    url = img_url(limits_bucket, "big.jpg", "w=1500&format=webp")
    responses = fire_together(folio, [url] * 8)
    states = [r.headers.get("x-folio-cache") for r in responses]
    assert all(r.status_code == 200 for r in responses), [r.status_code for r in responses]
    assert states.count("miss") == 1, states
    assert set(states) <= {"miss", "shared", "hit"}, states
    assert len({r.content for r in responses}) == 1
    assert len({r.headers["etag"] for r in responses}) == 1
    assert decode(responses[0].content).size == (1500, 1125)


# ---------------------------------------------------------------- a full queue


BUSY_CONFIG = TEST_CONFIG + "\n[images]\nworkers = 1\nmax_queue = 1\nmax_source_bytes = 4000000\n"
SLOW_CONFIG = TEST_CONFIG + "\n[images]\ntimeout_seconds = 0.01\n"


@pytest.fixture(scope="module")
def own_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FolioProcess]]:
    """Two dedicated servers, started side by side (starting one is most of their cost):
    "busy" (one worker, a queue of one, 4 MB sources) and "slow" (10 ms per transform)."""
    servers = {
        name: FolioProcess(data_dir=tmp_path_factory.mktemp(f"folio-img-{name}") / "data", config_text=config)
        for name, config in (("busy", BUSY_CONFIG), ("slow", SLOW_CONFIG))
    }
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(FolioProcess.start, servers.values()))
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def busy_server(own_servers: dict[str, FolioProcess]) -> FolioProcess:
    return own_servers["busy"]


@pytest.fixture(scope="module")
def busy_bucket(busy_server: FolioProcess) -> Iterator[str]:
    client = make_s3_client(busy_server)
    for name in new_bucket(client, "imgbusy"):
        make_objects_public(client, name)
        client.put_object(
            Bucket=name, Key="big.jpg", Body=encode(smooth_picture((2400, 1800)), "JPEG", quality=85)
        )
        client.put_object(Bucket=name, Key="huge.bin", Body=b"\x89PNG\r\n\x1a\n" + bytes(4_100_000))
        yield name


def test_full_queue_answers_503_busy_with_retry_after(busy_server: FolioProcess, busy_bucket: str) -> None:
    # Distinct, uncached, heavy transforms: one runs, the queue holds one, the rest are refused.
    urls = [img_url(busy_bucket, "big.jpg", f"w={1600 + 4 * i}&format=webp") for i in range(12)]
    responses = fire_together(busy_server, urls)
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}, statuses
    assert 503 in statuses, f"no request was refused with workers=1, max_queue=1: {statuses}"
    assert 200 in statuses, statuses
    for url, response in zip(urls, responses, strict=True):
        if response.status_code == 503:
            api_error(response, 503, "Busy")
            retry_after = response.headers.get("retry-after")
            assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, (
                response.headers
            )
        else:
            width = int(url.split("w=")[1].split("&")[0])
            out = decode(response.content)
            assert out.format == "WEBP" and out.size == (width, width * 3 // 4), (url, out.size)
    # Once the burst is over, the server answers again (a refused request was not cached).
    with img_client(busy_server) as client:
        refused = next(u for u, r in zip(urls, responses, strict=True) if r.status_code == 503)
        again = client.get(refused)
        assert again.status_code == 200, again.text[:300]
        assert again.headers["x-folio-cache"] == "miss"


def test_identical_requests_are_one_transform_even_with_a_queue_of_one(
    busy_server: FolioProcess, busy_bucket: str
) -> None:
    """Computed once: eight identical requests are one transform, not eight queued ones."""
    url = img_url(busy_bucket, "big.jpg", "w=1704&format=webp")
    responses = fire_together(busy_server, [url] * 8)
    assert [r.status_code for r in responses] == [200] * 8, [(r.status_code, r.text[:100]) for r in responses]
    states = [r.headers["x-folio-cache"] for r in responses]
    assert states.count("miss") == 1 and set(states) <= {"miss", "shared", "hit"}, states
    assert len({r.content for r in responses}) == 1
    assert decode(responses[0].content).size == (1704, 1278)


def test_source_over_max_source_bytes_is_413(busy_server: FolioProcess, busy_bucket: str) -> None:
    with img_client(busy_server) as client:
        api_error(get_img(client, busy_bucket, "huge.bin", "w=100"), 413, "SourceTooLarge")


# ---------------------------------------------------------------- a transform over its time


def test_transform_over_timeout_seconds_is_503_transform_timeout(
    own_servers: dict[str, FolioProcess],
) -> None:
    server = own_servers["slow"]
    client = make_s3_client(server)
    for name in new_bucket(client, "imgslow"):
        make_objects_public(client, name)
        client.put_object(
            Bucket=name, Key="big.jpg", Body=encode(smooth_picture((2400, 1800)), "JPEG", quality=85)
        )
        with img_client(server) as anon:
            # Far more than 10 ms of work: decode 2400x1800 in full, resize, encode 1600x1200.
            response = get_img(anon, name, "big.jpg", "w=1600&format=webp")
            api_error(response, 503, "TransformTimeout")
