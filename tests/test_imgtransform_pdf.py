"""PDF sources of `/api/img` (docs/image-transforms.md, "PDF sources"): a page chosen by
`page`, told from images by its bytes, rasterized at the resolution the output needs
and then transformed and cached like an image; hostile PDFs (encrypted, damaged, a
giant page, thousands of pages, a zip bomb of drawing operators, a page slower than the
timeout) answer a documented 4xx or 503 quickly and leave the server as it was.

The PDFs are written by hand below (a few objects, a cross-reference table, and for the
encrypted ones the standard security handler's RC4 with a 40-bit key), so every page's
size and colours are known exactly; pypdfium2 in this process checks that each one is
the PDF it claims to be. Answers are decoded with Pillow. Hostile cases run on a server
of their own with one transform worker and a low pixel limit, whose rasterizer
processes the tests find among the server's children in /proc.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from PIL import Image

from tests.conftest import TEST_CONFIG, make_objects_public, make_s3_client, new_bucket
from tests.folio_process import FolioProcess
from tests.imgtools import (
    api_error,
    encode,
    get_img,
    image_of,
    img_client,
    is_blue,
    is_red,
    mean_colour,
    proc_status_kb,
)

A4 = (595, 842)  # points: 793 x 1123 CSS pixels
A4_LANDSCAPE = (842, 595)
GREEN = (0, 160, 0)

# ---------------------------------------------------------------- writing PDFs


def painted(
    page: tuple[float, float], colour: tuple[int, int, int], band: tuple[int, int, int] | None = None
) -> bytes:
    """A content stream filling the page with `colour`, and its top tenth with `band`."""
    width, height = page
    ops = b"%.3f %.3f %.3f rg 0 0 %g %g re f\n" % (*(c / 255 for c in colour), width, height)
    if band is not None:
        ops += b"%.3f %.3f %.3f rg 0 %g %g %g re f\n" % (
            *(c / 255 for c in band),
            height * 0.9,
            width,
            height * 0.1,
        )
    return ops


PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def rc4(key: bytes, data: bytes) -> bytes:
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) % 256
        state[i], state[j] = state[j], state[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + state[i]) % 256
        state[i], state[j] = state[j], state[i]
        out.append(byte ^ state[(state[i] + state[j]) % 256])
    return bytes(out)


@dataclass(frozen=True)
class Rc4Security:
    """PDF 1.4's standard security handler, revision 2 (40-bit RC4): algorithms 3.2-3.4
    of the PDF Reference. An empty user password opens without asking (an owner password
    only restricts permissions)."""

    user: str
    owner: str = "owner-secret"
    file_id: bytes = bytes(range(16))
    permissions: int = -44

    @staticmethod
    def _padded(password: str) -> bytes:
        return (password.encode("latin-1") + PAD)[:32]

    @property
    def o_entry(self) -> bytes:
        return rc4(hashlib.md5(self._padded(self.owner)).digest()[:5], self._padded(self.user))

    @property
    def key(self) -> bytes:
        seed = self._padded(self.user) + self.o_entry + struct.pack("<i", self.permissions) + self.file_id
        return hashlib.md5(seed).digest()[:5]

    def dictionary(self) -> bytes:
        u_entry = rc4(self.key, PAD)
        return b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>" % (
            self.o_entry.hex().encode(),
            u_entry.hex().encode(),
            self.permissions,
        )

    def encrypt(self, number: int, data: bytes) -> bytes:
        object_key = hashlib.md5(self.key + struct.pack("<I", number)[:3] + struct.pack("<H", 0)).digest()[
            :10
        ]
        return rc4(object_key, data)


def write_pdf(
    pages: list[tuple[tuple[float, float], bytes]],
    security: Rc4Security | None = None,
    compress: bool = True,
) -> bytes:
    """A PDF of `pages` (MediaBox size in points, content stream); identical content
    streams are written once and shared (a thousand-page PDF stays small)."""
    objects: list[bytes] = [b"", b""]  # 1: catalog, 2: page tree

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    streams: dict[bytes, int] = {}
    kids = []
    for (width, height), content in pages:
        if content not in streams:
            data = zlib.compress(content, 9) if compress else content
            number = len(objects) + 1
            if security is not None:
                data = security.encrypt(number, data)
            flate = b"/Filter /FlateDecode " if compress else b""
            streams[content] = add(b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), flate, data))
        kids.append(
            add(
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] /Contents %d 0 R >>"
                % (width, height, streams[content])
            )
        )
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    trailer = b"/Size %d /Root 1 0 R" % (len(objects) + 1 + (security is not None))
    if security is not None:
        encrypt = add(security.dictionary())
        trailer += b" /Encrypt %d 0 R /ID [<%s> <%s>]" % (
            encrypt,
            security.file_id.hex().encode(),
            security.file_id.hex().encode(),
        )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< %s >>\nstartxref\n%d\n%%%%EOF\n" % (trailer, xref)
    return bytes(out)


def two_pages() -> bytes:
    """Page 1: A4 portrait, red with a blue top band. Page 2: A4 landscape, green."""
    return write_pdf(
        [(A4, painted(A4, (255, 0, 0), band=(0, 0, 255))), (A4_LANDSCAPE, painted(A4_LANDSCAPE, GREEN))]
    )


def is_green(colour: tuple[float, float, float]) -> bool:
    r, g, b = colour
    return g > 120 and r < 60 and b < 60


def page_colours(data: bytes, password: str | None = None) -> list[tuple[int, int, int]]:
    """The centre colour of each page as PDFium draws it here (the fixture is what it claims)."""
    document = pdfium.PdfDocument(data, password=password)
    try:
        colours = []
        for page in document:
            image = page.render(scale=0.1).to_pil().convert("RGB")
            colours.append(image.getpixel((image.width // 2, image.height // 2)))
        return colours
    finally:
        document.close()


# ---------------------------------------------------------------- the session server


@pytest.fixture(scope="module")
def pdfs(s3) -> Iterator[str]:
    """A bucket whose objects anyone may GET (the website bucket policy), with report.pdf."""
    for name in new_bucket(s3, "imgpdf"):
        make_objects_public(s3, name)
        s3.put_object(Bucket=name, Key="report.pdf", Body=two_pages(), ContentType="application/pdf")
        yield name


@pytest.fixture(scope="module")
def anon(folio: FolioProcess) -> Iterator[httpx.Client]:
    with img_client(folio) as client:
        yield client


def test_the_fixture_pdf_is_what_it_claims() -> None:
    colours = page_colours(two_pages())
    assert len(colours) == 2 and is_red(colours[0]) and is_green(colours[1]), colours


def test_first_page_thumbnail_has_the_requested_width_and_the_pages_colours(
    anon: httpx.Client, pdfs: str
) -> None:
    response = get_img(anon, pdfs, "report.pdf", "w=200")
    thumb = image_of(response)
    # No format and no Accept naming WebP/AVIF: JPEG, as for a source with no format of its own.
    assert thumb.format == "JPEG" and response.headers["content-type"] == "image/jpeg"
    # 793 x 1123 CSS pixels scaled to 200 wide.
    assert thumb.size == (200, 283), thumb.size
    assert is_blue(mean_colour(thumb, (0, 0, 200, 24))), mean_colour(thumb, (0, 0, 200, 24))
    assert is_red(mean_colour(thumb, (0, 40, 200, 283))), mean_colour(thumb, (0, 40, 200, 283))
    # The natural size (no w/h) is the page in CSS pixels, upright.
    whole = image_of(get_img(anon, pdfs, "report.pdf", "format=png"))
    assert whole.format == "PNG" and whole.size == (793, 1123)
    assert is_blue(mean_colour(whole, (0, 0, 793, 100))) and is_red(mean_colour(whole, (0, 200, 793, 1123)))


def test_page_two_is_the_second_page(anon: httpx.Client, pdfs: str) -> None:
    first = get_img(anon, pdfs, "report.pdf", "w=200&format=webp")
    second = get_img(anon, pdfs, "report.pdf", "w=200&format=webp&page=2")
    one, two = image_of(first), image_of(second)
    assert one.format == two.format == "WEBP"
    assert two.size == (200, 141), two.size  # landscape: 1123 x 793 scaled to 200 wide
    assert is_green(mean_colour(two)), mean_colour(two)
    assert is_red(mean_colour(one, (0, 40, 200, 283)))
    assert first.content != second.content and first.headers["etag"] != second.headers["etag"]


def test_fit_rotate_and_dpr_apply_to_a_page(anon: httpx.Client, pdfs: str) -> None:
    # An enlargement is rendered at its size (a vector page), not refused or capped at 793.
    big = image_of(get_img(anon, pdfs, "report.pdf", "w=1000&fit=contain&format=png"))
    assert big.size == (1000, 1416), big.size
    # dpr multiplies; rotate turns the page clockwise (the blue band ends up on the right).
    turned = image_of(get_img(anon, pdfs, "report.pdf", "h=100&dpr=2&rotate=90&format=png"))
    assert turned.size == (283, 200), turned.size
    assert is_blue(mean_colour(turned, (260, 0, 283, 200))) and is_red(mean_colour(turned, (0, 0, 200, 200)))
    covered = image_of(get_img(anon, pdfs, "report.pdf", "w=120&h=120&fit=cover&gravity=no&format=png"))
    assert covered.size == (120, 120) and is_blue(mean_colour(covered, (0, 0, 120, 10)))


def test_a_page_past_the_last_is_a_400_with_the_page_count(anon: httpx.Client, pdfs: str) -> None:
    for _ in range(2):  # and never cached
        error = api_error(get_img(anon, pdfs, "report.pdf", "w=200&page=3"), 400, "InvalidParameter")
        assert error["details"] == {"parameter": "page", "pages": 2}, error
        assert "2" in error["message"]
    for query in ("page=0", "page=-1", "page=two", "page=", "page=1000001", "page=1&page=2", "page=1.5"):
        error = api_error(get_img(anon, pdfs, "report.pdf", query), 400, "InvalidParameter")
        assert error["details"]["parameter"] == "page", (query, error)


def test_a_pdf_is_told_by_its_bytes_not_its_name_or_type(anon: httpx.Client, s3, pdfs: str) -> None:
    s3.put_object(Bucket=pdfs, Key="scan.bin", Body=two_pages(), ContentType="application/octet-stream")
    s3.put_object(
        Bucket=pdfs,
        Key="picture.pdf",
        Body=encode(Image.new("RGB", (300, 150), (0, 0, 255)), "PNG"),
        ContentType="application/pdf",
    )
    page = image_of(get_img(anon, pdfs, "scan.bin", "w=100&page=2"))
    assert page.size == (100, 71) and is_green(mean_colour(page))
    picture = image_of(get_img(anon, pdfs, "picture.pdf", "w=100"))
    assert picture.format == "PNG" and picture.size == (100, 50) and is_blue(mean_colour(picture))


def test_page_on_an_image_is_the_default_or_a_400(anon: httpx.Client, s3, pdfs: str) -> None:
    """Strict as every parameter: page=1 is the default written out (same cache entry);
    another page of an image is refused, never a new cache entry of the same picture."""
    s3.put_object(Bucket=pdfs, Key="photo.png", Body=encode(Image.new("RGB", (300, 150), (255, 0, 0)), "PNG"))
    first = get_img(anon, pdfs, "photo.png", "w=60")
    assert first.headers["x-folio-cache"] == "miss" and image_of(first).size == (60, 30)
    same = get_img(anon, pdfs, "photo.png", "w=60&page=1")
    assert same.headers["x-folio-cache"] == "hit" and same.headers["etag"] == first.headers["etag"]
    for _ in range(2):
        error = api_error(get_img(anon, pdfs, "photo.png", "w=60&page=2"), 400, "InvalidParameter")
        assert error["details"] == {"parameter": "page", "pages": 1}, error
    # Not an image at all: what it is comes first (415), whatever the page.
    s3.put_object(
        Bucket=pdfs, Key="notes.txt", Body=b"plain words, no pages\n" * 10, ContentType="text/plain"
    )
    api_error(get_img(anon, pdfs, "notes.txt", "w=60&page=2"), 415, "UnsupportedImage")


def test_second_request_is_a_cache_hit_and_etag_gives_304(anon: httpx.Client, s3, pdfs: str) -> None:
    key = f"cached-{uuid.uuid4().hex[:8]}.pdf"
    s3.put_object(Bucket=pdfs, Key=key, Body=two_pages())
    first = get_img(anon, pdfs, key, "w=150")
    assert first.headers["x-folio-cache"] == "miss"
    second = get_img(anon, pdfs, key, "w=150")
    assert second.headers["x-folio-cache"] == "hit"
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    assert second.headers["cache-control"].replace(" ", "") == "public,max-age=604800"
    # The default page written out is the same entry; another page is another entry.
    assert get_img(anon, pdfs, key, "page=1&w=150").headers["x-folio-cache"] == "hit"
    assert get_img(anon, pdfs, key, "w=150&page=2").headers["x-folio-cache"] == "miss"
    assert get_img(anon, pdfs, key, "w=150&page=2").headers["x-folio-cache"] == "hit"
    not_modified = get_img(anon, pdfs, key, "w=150", **{"If-None-Match": first.headers["etag"]})
    assert not_modified.status_code == 304 and not_modified.content == b""
    # A new version of the PDF is a new entry, never the stale page.
    s3.put_object(Bucket=pdfs, Key=key, Body=write_pdf([(A4, painted(A4, GREEN))]))
    fresh = get_img(anon, pdfs, key, "w=150")
    assert fresh.headers["x-folio-cache"] == "miss" and is_green(mean_colour(image_of(fresh)))
    assert get_img(anon, pdfs, key, "w=150", **{"If-None-Match": first.headers["etag"]}).status_code == 200


def test_access_rules_are_those_of_any_object(
    folio: FolioProcess, anon: httpx.Client, s3, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="private.pdf", Body=two_pages())
    for query in ("w=100", "w=100&page=2", "w=100&page=9"):
        api_error(get_img(anon, bucket, "private.pdf", query), 403, "AccessDenied")
    with img_client(folio, f"{folio.access_key}:{folio.secret_key}") as owner:
        page = image_of(get_img(owner, bucket, "private.pdf", "w=100&page=2"))
        assert is_green(mean_colour(page))
        error = api_error(get_img(owner, bucket, "private.pdf", "w=100&page=9"), 400, "InvalidParameter")
        assert error["details"]["pages"] == 2
    # The owner's cached page is not served to anyone else, not even as a 304.
    api_error(get_img(anon, bucket, "private.pdf", "w=100&page=2"), 403, "AccessDenied")
    make_objects_public(s3, bucket)
    assert is_green(mean_colour(image_of(get_img(anon, bucket, "private.pdf", "w=100&page=2"))))


def test_a_pdf_needing_a_password_is_422_and_one_with_only_an_owner_password_renders(
    anon: httpx.Client, s3, pdfs: str
) -> None:
    red_page = [(A4, painted(A4, (255, 0, 0)))]
    locked = write_pdf(red_page, Rc4Security(user="open-sesame"))
    restricted = write_pdf(red_page, Rc4Security(user=""))
    # Real encrypted PDFs: PDFium asks for the password, and with it finds the red page.
    with pytest.raises(pdfium.PdfiumError) as refused:
        pdfium.PdfDocument(locked)
    assert refused.value.err_code == pdfium_c.FPDF_ERR_PASSWORD
    assert is_red(page_colours(locked, password="open-sesame")[0])
    assert b"/Encrypt" in restricted and is_red(page_colours(restricted)[0])
    s3.put_object(Bucket=pdfs, Key="locked.pdf", Body=locked)
    s3.put_object(Bucket=pdfs, Key="restricted.pdf", Body=restricted)
    for query in ("w=100", "", "w=100&page=2"):
        error = api_error(get_img(anon, pdfs, "locked.pdf", query), 422, "PdfEncrypted")
        assert "password" in error["message"]
    assert is_red(mean_colour(image_of(get_img(anon, pdfs, "restricted.pdf", "w=100"))))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"%PDF-", id="magic-only"),
        pytest.param(b"%PDF-1.7\n" + os.urandom(5000), id="random-after-header"),
        pytest.param(
            b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n%%EOF\n", id="no-page-tree"
        ),
        pytest.param(write_pdf([]), id="zero-pages"),
    ],
)
def test_an_unreadable_pdf_is_422_corrupt(anon: httpx.Client, s3, pdfs: str, body: bytes) -> None:
    key = f"broken-{uuid.uuid4().hex[:8]}.pdf"
    s3.put_object(Bucket=pdfs, Key=key, Body=body)
    for query in ("w=100", "w=100&page=2", "format=webp"):
        api_error(get_img(anon, pdfs, key, query), 422, "CorruptImage")


def test_a_pdf_of_thousands_of_pages_serves_its_last_page(anon: httpx.Client, s3, pdfs: str) -> None:
    pages = [(A4, painted(A4, (255, 0, 0)))] * 2999 + [(A4_LANDSCAPE, painted(A4_LANDSCAPE, GREEN))]
    body = write_pdf(pages)
    assert len(body) < 500_000
    s3.put_object(Bucket=pdfs, Key="long.pdf", Body=body)
    started = time.monotonic()
    last = image_of(get_img(anon, pdfs, "long.pdf", "w=100&page=3000"))
    assert last.size == (100, 71) and is_green(mean_colour(last))
    assert is_red(mean_colour(image_of(get_img(anon, pdfs, "long.pdf", "w=100&page=1500"))))
    assert time.monotonic() - started < 10
    error = api_error(get_img(anon, pdfs, "long.pdf", "w=100&page=3001"), 400, "InvalidParameter")
    assert error["details"]["pages"] == 3000


def test_pages_are_rendered_side_by_side(folio: FolioProcess, s3, pdfs: str) -> None:
    """Distinct requests at once: each rasterizer serves one transform thread at a time."""
    key = f"busy-{uuid.uuid4().hex[:8]}.pdf"
    s3.put_object(Bucket=pdfs, Key=key, Body=two_pages())

    def one(width: int) -> tuple[int, Image.Image]:
        with img_client(folio) as client:
            return width, image_of(get_img(client, pdfs, key, f"w={width}&page={1 + width % 2}&format=png"))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(101, 117)))
    for width, image in results:
        assert image.width == width
        colour = mean_colour(image, (0, image.height // 3, width, image.height))
        assert is_green(colour) if width % 2 else is_red(colour), (width, colour)


# ---------------------------------------------------------------- hostile PDFs, a server of their own

# One worker (so its rasterizer is the only one), 4 megapixels at most per render.
TIGHT_CONFIG = (
    TEST_CONFIG
    + "\n[images]\nworkers = 1\nmax_queue = 4\nmax_source_pixels = 4000000\ntimeout_seconds = 20.0\n"
)
# Far less time than starting a rasterizer takes.
HASTY_CONFIG = TEST_CONFIG + "\n[images]\nworkers = 1\ntimeout_seconds = 0.05\n"


@pytest.fixture(scope="module")
def own_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FolioProcess]]:
    servers = {
        name: FolioProcess(data_dir=tmp_path_factory.mktemp(f"folio-pdf-{name}") / "data", config_text=config)
        for name, config in (("tight", TIGHT_CONFIG), ("hasty", HASTY_CONFIG))
    }
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(FolioProcess.start, servers.values()))
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def public_bucket_on(server: FolioProcess, objects: dict[str, bytes]) -> Iterator[str]:
    client = make_s3_client(server)
    for name in new_bucket(client, "imgpdfx"):
        make_objects_public(client, name)
        for key, body in objects.items():
            client.put_object(Bucket=name, Key=key, Body=body)
        yield name


def rasterizers(server: FolioProcess) -> list[int]:
    """The server's PDF rasterizer processes (children running pdf_worker.py)."""
    assert server.proc is not None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == server.proc.pid and b"pdf_worker.py" in command:
            found.append(int(entry.name))
    return found


GIANT = (200_000, 200_000)  # points: 266,667 px a side, 71 gigapixels at 96 dpi


def test_a_giant_mediabox_renders_within_the_pixel_limit_and_time(
    own_servers: dict[str, FolioProcess],
) -> None:
    server = own_servers["tight"]
    giant = write_pdf([(GIANT, painted(GIANT, GREEN, band=(0, 0, 255)))])
    assert pdfium.PdfDocument(giant)[0].get_size() == GIANT
    for bucket in public_bucket_on(server, {"giant.pdf": giant}):
        with img_client(server) as anon:
            started = time.monotonic()
            thumb = image_of(get_img(anon, bucket, "giant.pdf", "w=200&format=png"))
            assert thumb.size == (200, 200) and is_green(mean_colour(thumb, (0, 40, 200, 200)))
            assert is_blue(mean_colour(thumb, (0, 0, 200, 15)))
            # Crop at the natural size would need the whole page at 266,667 px a side: the
            # render is capped at 4 megapixels instead, and the crop comes from that.
            crop = image_of(get_img(anon, bucket, "giant.pdf", "w=100&h=100&fit=crop&format=png"))
            assert crop.size == (100, 100) and is_green(mean_colour(crop))
            whole = image_of(get_img(anon, bucket, "giant.pdf", "format=webp"))
            assert whole.size == (4096, 4096)  # the output cap, as for any source
            elapsed = time.monotonic() - started
            assert elapsed < 15, f"three renders of the giant page took {elapsed:.1f} s"
        (pid,) = rasterizers(server)
        # Its peak memory: a 4 MP bitmap (12 MB) and PDFium, nowhere near a page-sized one.
        peak_mb = proc_status_kb(pid, "VmHWM") / 1024
        assert peak_mb < 150, f"the rasterizer peaked at {peak_mb:.0f} MB"


def test_a_zip_bomb_of_drawing_operators_is_422_and_leaves_the_server_as_it_was(
    own_servers: dict[str, FolioProcess],
) -> None:
    """350 KB that inflate to 200 MB of operators: parsed, 15 million paths and gigabytes
    of memory. The rasterizer hits its memory cap and ends; the server does not grow."""
    server = own_servers["tight"]
    assert server.proc is not None
    bomb = write_pdf([(A4, b"1 0 0 rg " + b"0 0 1 1 re f\n" * (200 * 2**20 // 13))])
    assert len(bomb) < 1_000_000
    for bucket in public_bucket_on(server, {"bomb.pdf": bomb, "fine.pdf": two_pages()}):
        with img_client(server) as anon:
            assert image_of(get_img(anon, bucket, "fine.pdf", "w=50")).size == (50, 71)
            rss_before = proc_status_kb(server.proc.pid, "VmRSS")
            started = time.monotonic()
            for _ in range(2):
                api_error(get_img(anon, bucket, "bomb.pdf", "w=100"), 422, "PdfTooComplex")
            elapsed = time.monotonic() - started
            growth_mb = (proc_status_kb(server.proc.pid, "VmRSS") - rss_before) / 1024
            assert elapsed < 30, f"refusing the bomb twice took {elapsed:.1f} s"
            assert growth_mb < 50, f"the server grew by {growth_mb:.0f} MB"
            # The server, its worker and a fresh rasterizer carry on.
            page = image_of(get_img(anon, bucket, "fine.pdf", "w=50&page=2"))
            assert page.size == (50, 35) and is_green(mean_colour(page))
        assert len(rasterizers(server)) == 1


def test_a_page_over_the_timeout_is_503_and_its_rasterizer_is_killed(
    own_servers: dict[str, FolioProcess],
) -> None:
    server = own_servers["hasty"]
    # 300,000 filled rectangles: about 0.15-0.35 s to rasterize here, always past the 50 ms
    # timeout (a plain page can finish within it on an idle machine once the worker is warm).
    slow = write_pdf([(A4, b"1 0 0 rg " + b"0 0 1 1 re f\n" * 300_000)])
    for bucket in public_bucket_on(server, {"report.pdf": slow}):
        with img_client(server) as anon:
            for width in (100, 101, 102):
                response = get_img(anon, bucket, "report.pdf", f"w={width}")
                api_error(response, 503, "TransformTimeout")
                assert response.headers.get("retry-after") == "1"
        # Killed at the deadline, not left running or kept: at most one (a fresh one
        # being started by the last request) ever exists, and none after a moment.
        deadline = time.monotonic() + 5
        while rasterizers(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rasterizers(server) == []
