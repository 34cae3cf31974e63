"""The document API against hostile input (docs/document-api.md, "Account, limits,
errors" and the outbound guard): addresses it must not fetch, local files, bad
parameters, oversized bodies, template sandbox escapes, other accounts' jobs and
assets. Every answer is a deliberate one (never a 5xx), errors are
`{"error": {"code", "message", "details"}}` naming the field, and nothing leaks.

The server is this module's own: loopback and private targets are NOT allowed (the
default) and `[docgen] max_request_bytes` is small. A loopback HTTP server records
every request it receives: it must receive none.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pypdfium2 as pdfium
import pytest

from tests.docgen_helpers import (
    HELLO_B64,
    DocAccount,
    Recorder,
    assert_error,
    b64,
    client,
    read_pdf,
    run_curl,
    signed_up,
    signup,
    wait_job,
)
from tests.folio_process import FolioProcess, running_server

MAX_REQUEST = 20000
CONFIG = f"""
[docgen]
max_request_bytes = {MAX_REQUEST}

[webhooks]
allow_http = true
"""
ENGINES = ["weasyprint"] + (["chromium"] if shutil.which("chromium") else [])
LEAK_MARKERS = (
    "root:",
    "<class",
    "<module",
    "'os'",
    "posix",
    "Traceback",
    "__builtins__",
    "/usr/lib",
    "site-packages",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "docgen-security", CONFIG)


@pytest.fixture(scope="module")
def acct(server: FolioProcess) -> Iterator[DocAccount]:
    yield from signed_up(server, "sec")


@pytest.fixture(scope="module")
def spy() -> Iterator[Recorder]:
    """A loopback server that must never be reached (it would serve a red image)."""
    found = Recorder(body=b"body { background: red } .x { color: red }", content_type="text/css")
    yield found
    found.close()


def no_leak(text: str) -> None:
    for marker in LEAK_MARKERS:
        assert marker not in text, (marker, text[:2000])


def loopback_forms(port: int) -> list[str]:
    """One loopback server, spelled every way a guard might miss."""
    return [
        f"http://127.0.0.1:{port}",
        f"http://localhost:{port}",
        f"http://127.1:{port}",
        f"http://2130706433:{port}",
        f"http://0.0.0.0:{port}",
        f"http://[::1]:{port}",
        f"http://[::ffff:127.0.0.1]:{port}",
    ]


# ------------------------------------------------------------------ URLs


def test_url_targets_are_refused(acct: DocAccount, spy: Recorder) -> None:
    port = spy.server.server_address[1]
    urls = [
        "http://127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.0.1/",
        "http://100.100.100.200/",
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "ftp://example.com/x",
        "javascript:alert(1)",
        "data:text/html,<h1>x</h1>",
        "http://user:pw@example.com/",
        "http:///etc/passwd",
        "",
        *[f"{base}/page" for base in loopback_forms(port)],
    ]
    for url in urls:
        for path in ("/v1/url/pdf", "/v2/url/image"):
            response = acct.http.post(path, json={"url": url, "async": False})
            error = assert_error(response, 400, "url")
            no_leak(json.dumps(error))
    assert_error(acct.http.post("/v1/url/pdf", json={"url": 5}), 400, "url")
    assert_error(acct.http.post("/v1/url/pdf", json={}), 400, "url")
    time.sleep(0.3)
    assert spy.all() == [], [h.path for h in spy.all()]


# ------------------------------------------------------------------ resources in HTML


FILE_PAGE = """<html><head>
<link rel="stylesheet" href="file:///etc/passwd">
<style>@import url("file:///etc/passwd"); @font-face { font-family: X; src: url(file:///etc/passwd); }
body { background: url(file:///etc/passwd); font-family: X; }</style>
</head><body><h1>Local files</h1>
<img src="file:///etc/passwd" alt="">
<iframe src="file:///etc/passwd"></iframe>
<object data="file:///etc/passwd" type="text/plain"></object>
<embed src="file:///etc/passwd" type="text/plain">
<a rel="attachment" href="file:///etc/passwd">attached</a>
<link rel="attachment" href="file:///etc/passwd">
<img src="file:///proc/self/environ" alt="">
</body></html>"""


@pytest.mark.parametrize("engine", ENGINES)
def test_html_cannot_pull_local_files(acct: DocAccount, engine: str) -> None:
    response = acct.http.post("/v1/html/pdf", json={"html": b64(FILE_PAGE), "engine": engine})
    assert response.status_code in (201, 422), response.text
    if response.status_code == 422:
        no_leak(response.text)
        return
    pages = read_pdf(response.content)
    text = "\n".join(page.text for page in pages)
    assert "Local files" in text
    assert "root:" not in text and "/bin/" not in text and "PATH=" not in text
    document = pdfium.PdfDocument(response.content)
    try:
        assert document.count_attachments() == 0, "a local file was embedded as an attachment"
    finally:
        document.close()
    assert b"root:x:0:0" not in response.content

    image = acct.http.post("/v1/html/image", json={"html": b64(FILE_PAGE), "engine": engine})
    assert image.status_code in (201, 422)


def spy_page(port: int) -> str:
    parts = []
    for n, base in enumerate(loopback_forms(port)):
        parts.append(
            f'<link rel="stylesheet" href="{base}/css{n}.css"><img src="{base}/img{n}.png">'
            f'<iframe src="{base}/frame{n}"></iframe><object data="{base}/obj{n}"></object>'
            f'<div style="background: url({base}/bg{n}.png)">bg</div>'
        )
    base = f"http://127.0.0.1:{port}"
    script = f"""<script>
try {{ fetch("{base}/fetch"); }} catch (e) {{}}
try {{ new WebSocket("ws://127.0.0.1:{port}/ws"); }} catch (e) {{}}
try {{ navigator.sendBeacon("{base}/beacon", "x"); }} catch (e) {{}}
try {{ var x = new XMLHttpRequest(); x.open("GET", "{base}/xhr"); x.send(); }} catch (e) {{}}
try {{ new EventSource("{base}/events"); }} catch (e) {{}}
</script>"""
    return (
        f'<html><head><style>@import url("{base}/import.css");</style>'
        f'<link rel="prefetch" href="{base}/prefetch"></head><body><h1>Private resources</h1>'
        + "".join(parts)
        + script
        + "</body></html>"
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_html_cannot_reach_loopback(acct: DocAccount, spy: Recorder, engine: str) -> None:
    port = spy.server.server_address[1]
    before = len(spy.all())
    html = b64(spy_page(port))
    response = acct.http.post("/v1/html/pdf", json={"html": html, "engine": engine, "waitUntil": "load"})
    assert response.status_code == 201, response.text
    assert "Private resources" in read_pdf(response.content)[0].text
    image = acct.http.post("/v1/html/image", json={"html": html, "engine": engine, "delay": 300})
    assert image.status_code == 201, image.text
    job = acct.http.post("/v2/html/pdf", json={"html": html, "engine": engine}).json()
    assert wait_job(acct.http, job["id"])["status"] == "success"
    time.sleep(0.5)
    hits = spy.all()[before:]
    assert hits == [], f"{engine} reached loopback: {[(h.method, h.path) for h in hits]}"


def test_template_cannot_reach_loopback(acct: DocAccount, spy: Recorder) -> None:
    before = len(spy.all())
    template = (
        '<img src="{{ base }}/tpl.png"><link rel=stylesheet href="{{ base }}/tpl.css"><p>{{ base }}</p>'
    )
    response = acct.http.post("/v1/template/pdf", json={"template": b64(template), "data": {"base": spy.url}})
    assert response.status_code == 201
    time.sleep(0.3)
    assert spy.all()[before:] == []


def test_storage_endpoint_and_webhook_guards(acct: DocAccount, spy: Recorder) -> None:
    before = len(spy.all())
    config = {
        "bucket": "b",
        "region": "us-east-1",
        "accessKeyId": "k",
        "secretAccessKey": "s",
        "prefix": "p/",
    }
    for endpoint in [
        *loopback_forms(spy.server.server_address[1]),
        "http://169.254.169.254",
        "http://10.1.2.3:9000",
    ]:
        assert_error(acct.http.post("/v2/storage", json={**config, "endpoint": endpoint}), 400, "endpoint")
    assert_error(acct.http.get("/v2/storage"), 404)
    # A webhook to loopback on a server that does not allow it: the job runs, the
    # webhook is never sent.
    job = acct.http.post("/v2/html/pdf", json={"html": HELLO_B64, "webhook": f"{spy.url}/hook"}).json()
    assert wait_job(acct.http, job["id"])["status"] == "success"
    time.sleep(1.0)
    assert spy.all()[before:] == []


# ------------------------------------------------------------------ bad input


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/html/pdf", {"html": "<h1>not base64</h1>"}, "html"),
    ("/v1/html/pdf", {"html": "PGgxPkhlbGxvIFdvcmxkPC9oMT4"}, "html"),  # padding missing
    ("/v1/html/pdf", {}, "html"),
    ("/v1/html/pdf", {"html": ""}, "html"),
    ("/v1/html/pdf", {"html": ["x"]}, "html"),
    ("/v1/html/pdf", {"html": "//79/w=="}, "html"),  # not UTF-8
    ("/v1/html/pdf", {"html": HELLO_B64, "format": "b5"}, "format"),
    ("/v1/html/pdf", {"html": HELLO_B64, "format": 4}, "format"),
    ("/v1/html/pdf", {"html": HELLO_B64, "format": "../letter"}, "format"),
    ("/v1/html/pdf", {"html": HELLO_B64, "margin": {"top": "abc"}}, "margin.top"),
    ("/v1/html/pdf", {"html": HELLO_B64, "margin": {"left": -5}}, "margin.left"),
    ("/v1/html/pdf", {"html": HELLO_B64, "margin": {"left": "10 furlongs"}}, "margin.left"),
    ("/v1/html/pdf", {"html": HELLO_B64, "margin": {"right": "1e9px"}}, "margin.right"),
    ("/v1/html/pdf", {"html": HELLO_B64, "margin": {"bottom": True}}, "margin.bottom"),
    ("/v1/html/pdf", {"html": HELLO_B64, "margin": {"middle": "1in"}}, "margin"),
    ("/v1/html/pdf", {"html": HELLO_B64, "margin": "1in"}, "margin"),
    ("/v1/html/pdf", {"html": HELLO_B64, "width": "wide"}, "width"),
    ("/v1/html/pdf", {"html": HELLO_B64, "scale": 5}, "scale"),
    ("/v1/html/pdf", {"html": HELLO_B64, "landscape": "yes"}, "landscape"),
    ("/v1/html/pdf", {"html": HELLO_B64, "timeout": 10}, "timeout"),
    ("/v1/html/pdf", {"html": HELLO_B64, "timeout": 10**9}, "timeout"),
    ("/v1/html/pdf", {"html": HELLO_B64, "delay": -1}, "delay"),
    ("/v1/html/pdf", {"html": HELLO_B64, "delay": 10**7}, "delay"),
    ("/v1/html/pdf", {"html": HELLO_B64, "headerTemplate": 5}, "headerTemplate"),
    ("/v1/html/pdf", {"html": HELLO_B64, "filename": "../../etc/passwd"}, "filename"),
    ("/v1/html/pdf", {"html": HELLO_B64, "async": "yes"}, "async"),
    ("/v1/html/image", {"html": HELLO_B64, "imageType": "gif"}, "imageType"),
    ("/v1/html/image", {"html": HELLO_B64, "quality": 0}, "quality"),
    ("/v1/html/image", {"html": HELLO_B64, "viewPort": {"width": 0}}, "width"),
    ("/v1/html/image", {"html": HELLO_B64, "viewPort": {"width": 100000, "height": 100000}}, "width"),
    ("/v1/html/image", {"html": HELLO_B64, "viewPort": "big"}, "viewPort"),
    ("/v1/html/image", {"html": HELLO_B64, "viewPort": {"deviceScaleFactor": 50}}, "deviceScaleFactor"),
    ("/v1/template/pdf", {"template": "{{ x }}"}, "template"),
    ("/v1/template/pdf", {"template": b64("{{ x }}"), "data": "not json"}, "data"),
    ("/v1/template/pdf", {"template": b64("{{ x }}"), "data": [1, 2]}, "template"),
    ("/v1/template/pdf", {"template": b64("{% for %}")}, "template"),
    ("/v2/html/pdf", {"html": HELLO_B64, "storage": False}, "storage"),  # v2: async by default
    ("/v2/html/pdf", {"html": HELLO_B64, "storage": False, "async": True}, "storage"),
    ("/v1/html/pdf", {"html": HELLO_B64, "storage": False, "async": True}, "storage"),
    ("/v2/html/image", {"html": HELLO_B64, "storage": False}, "storage"),
]


def test_bad_parameters_are_clear_400s(acct: DocAccount) -> None:
    before = acct.http.get("/v2/account").json()["totalJobs"]
    wrong = {}
    for path, body, field_name in BAD_BODIES:
        response = acct.http.post(path, json=body)
        try:
            error = assert_error(response, 400)
        except AssertionError as exc:
            wrong[f"{path} {body}"] = str(exc)[:300]
            continue
        no_leak(json.dumps(error))
        if error["details"].get("field") != field_name:
            wrong[f"{path} {body}"] = (
                f"details.field {error['details'].get('field')!r}, expected {field_name!r}"
            )
    assert not wrong, json.dumps(wrong, indent=1)
    assert acct.http.get("/v2/account").json()["totalJobs"] == before  # refused before any job


def test_malformed_bodies(acct: DocAccount) -> None:
    for content, ctype in (
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"html"', "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"html=PGgxPg==", "application/x-www-form-urlencoded"),
        (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
    ):
        response = acct.http.post("/v1/html/pdf", content=content, headers={"content-type": ctype})
        no_leak(json.dumps(assert_error(response, 400)))
    broken_form = acct.http.post(
        "/v1/template/pdf",
        content=b"--x\r\nbroken",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert_error(broken_form, 400)
    bad_options = acct.http.post(
        "/v1/template/pdf", data={"options": "{oops"}, files={"template": ("t.njk", b"<p>x</p>")}
    )
    assert_error(bad_options, 400)


def test_oversized_bodies_are_413(server: FolioProcess, acct: DocAccount, tmp_path: Path) -> None:
    big_html = b64("<p>" + "x" * MAX_REQUEST + "</p>")
    assert_error(acct.http.post("/v1/html/pdf", json={"html": big_html}), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count as it reads
        yield b'{"html": "'
        for _ in range(MAX_REQUEST // 1000 + 5):
            yield b"A" * 1000
        yield b'"}'

    assert_error(
        acct.http.post("/v2/html/pdf", content=chunks(), headers={"content-type": "application/json"}), 413
    )
    big_form = acct.http.post(
        "/v1/template/pdf",
        data={"options": "{}"},
        files={"template": ("t.njk", b"<p>" + b"y" * MAX_REQUEST + b"</p>")},
    )
    assert_error(big_form, 413)
    (tmp_path / "big.json").write_text(json.dumps({"html": big_html}))
    status, body = run_curl(
        "-X", "POST", f"{server.web_url}/v1/html/pdf",
        "-H", f"X-API-Key: {acct.key}", "-H", "Content-Type: application/json",
        "-d", f"@{tmp_path / 'big.json'}", "--output", "-",
        timeout=30,
    )  # fmt: skip
    assert status == 413 and json.loads(body)["error"]["code"], body
    assert_error(acct.http.post("/v2/storage", json={"bucket": "b" * MAX_REQUEST}), 413)
    # Just under the limit is fine.
    fits = b64("<p>" + "z" * (MAX_REQUEST // 2) + "</p>")
    assert acct.http.post("/v1/html/pdf", json={"html": fits}).status_code == 201


# ------------------------------------------------------------------ templates


SANDBOX_ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ formatCurrency.__globals__ }}",
    "{{ formatDateTime.__code__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ request.application.__globals__ }}",
    "{{ items.__class__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ ({}).__class__.__base__ }}",
    "{{ 'x' * 100000000 }}",
    "{{ 9 ** 9999999 }}",
    "{{ range(10**9) | list }}",
]


def test_template_sandbox_escapes_are_400(acct: DocAccount) -> None:
    outcomes = {}
    for source in SANDBOX_ESCAPES:
        response = acct.http.post(
            "/v1/template/pdf", json={"template": b64(source), "data": {"items": [1]}, "timeout": 10000}
        )
        text = (
            response.text if response.headers.get("content-type", "").startswith("application/json") else ""
        )
        if response.status_code == 201:
            text = "\n".join(page.text for page in read_pdf(response.content))
        no_leak(text)
        assert "class 'str'" not in text and "function" not in text
        outcomes[source] = response.status_code
        if response.status_code == 400:
            assert_error(response, 400, "template")
    assert set(outcomes.values()) == {400}, json.dumps(outcomes, indent=1)
    # The sandbox refuses in the multipart variant too.
    response = acct.http.post(
        "/v1/template/pdf", data={"options": "{}"}, files={"template": ("t.njk", SANDBOX_ESCAPES[2].encode())}
    )
    no_leak(json.dumps(assert_error(response, 400, "template")))
    assert (
        acct.http.post(
            "/v1/template/pdf", json={"template": b64("<p>{{ a }}</p>"), "data": {"a": 1}}
        ).status_code
        == 201
    )


# ------------------------------------------------------------------ accounts and links


def test_other_accounts_jobs_and_assets_are_invisible(server: FolioProcess, acct: DocAccount) -> None:
    response = acct.http.post("/v2/html/pdf", json={"html": HELLO_B64, "generatePreview": True})
    job = wait_job(acct.http, response.json()["id"])
    asset = acct.http.get(f"/v2/assets/{job['assetId']}").json()
    other = signup(server, "intruder")
    try:
        assert_error(other.http.get(f"/v2/jobs/{job['id']}"), 404)
        assert_error(other.http.get(f"/v1/assets/{asset['id']}"), 404)
        assert other.http.get("/v2/jobs").json() == [] and other.http.get("/v2/assets").json() == []
        assert other.http.get("/v2/account").json()["totalJobs"] == 0
    finally:
        other.close()
    # A link is for one file: its signature does not open the preview, nor another asset.
    file_url = asset["url"]
    assert httpx.get(file_url, timeout=30).status_code == 200
    assert_error(httpx.get(file_url.replace("/file?", "/preview?"), timeout=30), 403)
    assert_error(httpx.get(file_url.replace(asset["id"], "ast_" + "0" * 20), timeout=30), 403)
    assert httpx.get(job["previewUrl"], timeout=30).headers["content-type"] == "image/png"


def test_filename_cannot_inject_headers(acct: DocAccount) -> None:
    response = acct.http.post(
        "/v1/html/pdf", json={"html": HELLO_B64, "filename": 'a"b\r\nSet-Cookie: evil=1; x=.pdf'}
    )
    if response.status_code == 201:
        assert "set-cookie" not in response.headers
        assert (
            "\r" not in response.headers["content-disposition"]
            and "\n" not in response.headers["content-disposition"]
        )
        assert response.headers["content-disposition"].startswith("attachment; filename*=UTF-8''a%22b%0D%0A")
    else:
        assert_error(response, 400, "filename")


def test_wrong_key_on_generation_makes_no_job(server: FolioProcess, acct: DocAccount) -> None:
    before = acct.http.get("/v2/account").json()["totalJobs"]
    with client(server, acct.key.replace("cl-", "cl-0")) as http:
        assert_error(http.post("/v2/html/pdf", json={"html": HELLO_B64}), 401)
    with client(server) as http:
        assert_error(
            http.post(
                "/v1/html/pdf", json={"html": HELLO_B64}, headers={"Authorization": f"Bearer {acct.key}"}
            ),
            401,
        )
    assert acct.http.get("/v2/account").json()["totalJobs"] == before
