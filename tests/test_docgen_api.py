"""The document API's wire contract (docs/document-api.md; seeds 000-003) against the
real server: every seed curl example run with real curl exactly as written (only the
base URL and the key changed), seed 002's JavaScript async workflow run unchanged
under Node's fetch, keys (`cl-`, at most 5, revocation), sync and async in v1 and v2,
jobs and assets with paging, the pre-authenticated download link, the account, the
X-RateLimit-* headers with 429 and 402, and generated files visible over S3 and
counted in `bytesUsed`.

Most tests share the session server (`folio`) with a signed-up account of their own;
the rate-limit tests start a server whose plans have small document budgets.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import make_s3_client
from tests.docgen_helpers import (
    HELLO_B64,
    DocAccount,
    assert_error,
    b64,
    client,
    dashboard,
    read_pdf,
    run_curl,
    signup,
    wait_job,
)
from tests.folio_process import FolioProcess, running_server

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
SEED_BASE = "https://api.cloudlayer.io"
SEED_KEY = "your-api-key-here"

# Seed 002, "Async Workflow", verbatim.
SEED_002_ASYNC_WORKFLOW = """// 1. Start an async generation job
const jobResponse = await fetch("https://api.cloudlayer.io/v2/html/pdf", {
method: "POST",
headers: {
"X-API-Key": "your-api-key-here",
"Content-Type": "application/json",
},
body: JSON.stringify({
html: btoa("<h1>Hello World</h1>"),
async: true,
}),
});
const job = await jobResponse.json();
console.log(`Job started: ${job.id}`);
// 2. Poll the job until it completes
let jobStatus;
do {
await new Promise((resolve) => setTimeout(resolve, 1000)); // Wait 1 second
const statusResponse = await fetch(
`https://api.cloudlayer.io/v2/jobs/${job.id}`,
{ headers: { "X-API-Key": "your-api-key-here" } }
);
jobStatus = await statusResponse.json();
} while (jobStatus.status === "pending" || jobStatus.status === "processing");
// 3. Retrieve the generated asset
if (jobStatus.status === "completed") {
const assetsResponse = await fetch(
"https://api.cloudlayer.io/v2/assets?limit=1",
{ headers: { "X-API-Key": "your-api-key-here" } }
);
const assets = await assetsResponse.json();
console.log(`Download URL: ${assets[0].url}`);
}
"""

# Seed 002, "Download an Asset", JavaScript (fetch), verbatim.
SEED_002_DOWNLOAD = """// Get asset metadata
const metaResponse = await fetch(
"https://api.cloudlayer.io/v2/assets/ast_abc123def456",
{
headers: { "X-API-Key": "your-api-key-here" },
}
);
const asset = await metaResponse.json();
// Download the file using the pre-authenticated URL
const fileResponse = await fetch(asset.url);
const fileBuffer = await fileResponse.arrayBuffer();
"""


def seeded(text: str, server: FolioProcess, key: str) -> str:
    """A seed snippet with only the base URL and the key substituted."""
    return text.replace(SEED_BASE, server.web_url).replace(SEED_KEY, key)


def run_seed_shell(
    script: str, server: FolioProcess, key: str, cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    """A seed's shell lines run by bash in `cwd` (where --output files land)."""
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", seeded(script, server, key)],
        cwd=cwd,
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out


def run_node(script: str, tmp_path: Path, name: str = "seed.mjs") -> subprocess.CompletedProcess[str]:
    path = tmp_path / name
    path.write_text(script)
    out = subprocess.run(["node", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"node exited {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}"
    return out


def pdf_text(data: bytes) -> str:
    return "\n".join(page.text for page in read_pdf(data))


@pytest.fixture(scope="module")
def acct(folio: FolioProcess) -> Iterator[DocAccount]:
    account = signup(folio, "docapi")
    yield account
    account.close()


@pytest.fixture
def fresh(folio: FolioProcess) -> Iterator[DocAccount]:
    """An account of the test's own (counts, lists and keys start empty)."""
    account = signup(folio, "docfresh")
    yield account
    account.close()


# ------------------------------------------------------------------ seed curl examples


def test_seed_001_v1_html_pdf_curl(folio: FolioProcess, acct: DocAccount, tmp_path: Path) -> None:
    """Seed 001, v1 "Synchronous vs. Asynchronous": the raw PDF, written by --output."""
    out = run_seed_shell(
        """curl -sS -X POST "https://api.cloudlayer.io/v1/html/pdf" \\
  -H "X-API-Key: your-api-key-here" \\
  -H "Content-Type: application/json" \\
  -d '{"html": "PGgxPkhlbGxvIFdvcmxkPC9oMT4="}' \\
  --output result.pdf -w '%{http_code} %{content_type}'""",
        folio,
        acct.key,
        tmp_path,
    )
    assert out.stdout.decode() == "201 application/pdf"
    pages = read_pdf((tmp_path / "result.pdf").read_bytes())
    assert len(pages) == 1
    assert "Hello World" in pages[0].text


def test_seed_001_v2_async_and_sync_curl(folio: FolioProcess, acct: DocAccount, tmp_path: Path) -> None:
    """Seed 001, v2: async (the default) answers the job; `"async": false` the file."""
    out = run_seed_shell(
        """curl -sS -X POST "https://api.cloudlayer.io/v2/html/pdf" \\
  -H "X-API-Key: your-api-key-here" \\
  -H "Content-Type: application/json" \\
  -d '{"html": "PGgxPkhlbGxvIFdvcmxkPC9oMT4="}' -w '\\n%{http_code}'""",
        folio,
        acct.key,
        tmp_path,
    )
    body, _, status = out.stdout.decode().rpartition("\n")
    assert status == "202"
    job = json.loads(body)
    assert job["id"].startswith("job_") and job["status"] == "pending", job
    assert job["type"] == "html-pdf"
    done = wait_job(acct.http, job["id"])
    assert done["status"] == "success", done
    assert done["assetId"].startswith("ast_") and done["size"] > 0 and done["processTime"] >= 0
    assert "html" not in done["params"]  # the request without its document

    out = run_seed_shell(
        """curl -sS -X POST "https://api.cloudlayer.io/v2/html/pdf" \\
  -H "X-API-Key: your-api-key-here" \\
  -H "Content-Type: application/json" \\
  -d '{"html": "PGgxPkhlbGxvIFdvcmxkPC9oMT4=", "async": false}' \\
  --output result.pdf -w '%{http_code} %{content_type}'""",
        folio,
        acct.key,
        tmp_path,
    )
    assert out.stdout.decode() == "201 application/pdf"
    assert "Hello World" in pdf_text((tmp_path / "result.pdf").read_bytes())


def test_seed_001_account_curl(folio: FolioProcess, acct: DocAccount) -> None:
    for version in ("v1", "v2"):
        status, body = run_curl(
            "-X", "GET", f"{folio.web_url}/{version}/account", "-H", f"X-API-Key: {acct.key}"
        )
        assert status == 200, body
        account = json.loads(body)
        assert account["email"] == acct.email
        for name in (
            "calls",
            "callsLimit",
            "bytesTotal",
            "bytesLimit",
            "storageUsed",
            "storageLimit",
            "computeTimeTotal",
            "computeTimeLimit",
            "subType",
            "subActive",
            "successJobs",
            "errorJobs",
            "totalJobs",
            "bytesUsed",
            "webhookSigningSecret",
        ):
            assert name in account, (name, account)
        assert account["subActive"] is True
        assert len(account["webhookSigningSecret"]) >= 32


def test_seed_003_get_status_curl(folio: FolioProcess, acct: DocAccount) -> None:
    """Seed 003, "Make a Test Request", with its lower-case header name."""
    status, body = run_curl(
        "--request", "GET", "--url", f"{folio.web_url}/v2/getStatus", "--header", f"x-api-key: {acct.key}"
    )
    assert status == 200
    assert json.loads(body) == {"status": "ok"}
    status, body = run_curl(
        "--request", "GET", "--url", f"{folio.web_url}/v1/getStatus", "--header", "x-api-key: cl-x"
    )
    assert status == 401


def test_seed_002_assets_curl(folio: FolioProcess, fresh: DocAccount, tmp_path: Path) -> None:
    """Seed 002: single asset, list, the paging example, and the download by `url`
    (curl | jq, then curl -o with no key)."""
    jobs = []
    for n in range(3):
        response = fresh.http.post("/v2/html/pdf", json={"html": b64(f"<p>asset number {n}</p>")})
        assert response.status_code == 202, response.text
        jobs.append(wait_job(fresh.http, response.json()["id"]))
    assert all(job["status"] == "success" for job in jobs), jobs

    asset_id = jobs[0]["assetId"]
    status, body = run_curl(
        "-X", "GET", f"{folio.web_url}/v2/assets/{asset_id}", "-H", f"X-API-Key: {fresh.key}"
    )
    assert status == 200
    asset = json.loads(body)
    assert set(asset) == {"id", "jobId", "ext", "type", "size", "url", "timestamp"}, asset
    assert asset["id"] == asset_id and asset["jobId"] == jobs[0]["id"]
    assert asset["ext"] == "pdf" and asset["type"] == "application/pdf" and asset["size"] == jobs[0]["size"]
    assert asset["timestamp"].endswith("Z") and "T" in asset["timestamp"]

    status, body = run_curl("-X", "GET", f"{folio.web_url}/v2/assets", "-H", f"X-API-Key: {fresh.key}")
    assert status == 200
    listed = json.loads(body)
    assert [a["id"] for a in listed] == [job["assetId"] for job in reversed(jobs)]  # newest first

    status, body = run_curl(
        "-X", "GET", f"{folio.web_url}/v2/assets?limit=25&offset=25", "-H", f"X-API-Key: {fresh.key}"
    )
    assert status == 200 and json.loads(body) == []
    status, body = run_curl(
        "-X", "GET", f"{folio.web_url}/v1/assets?limit=2&offset=1", "-H", f"X-API-Key: {fresh.key}"
    )
    assert status == 200
    assert [a["id"] for a in json.loads(body)] == [jobs[1]["assetId"], jobs[0]["assetId"]]

    script = f"""# First, get the asset metadata
ASSET_URL=$(curl -s "https://api.cloudlayer.io/v2/assets/{asset_id}" \\
-H "X-API-Key: your-api-key-here" | jq -r '.url')
# Then download the file
curl -o downloaded-file.pdf "$ASSET_URL"
"""
    run_seed_shell(script, folio, fresh.key, tmp_path)
    assert "asset number 0" in pdf_text((tmp_path / "downloaded-file.pdf").read_bytes())


def test_seed_000_storage_curl(folio: FolioProcess, fresh: DocAccount) -> None:
    """Seed 000: POST (the AWS, DigitalOcean and Google examples), GET (masked), DELETE."""
    aws = [
        "-X", "POST", f"{folio.web_url}/v2/storage",
        "-H", f"X-API-Key: {fresh.key}",
        "-H", "Content-Type: application/json",
        "-d", """{
    "bucket": "my-company-pdfs",
    "region": "us-east-1",
    "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
    "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "prefix": "cloudlayer/",
    "acl": "private"
  }""",
    ]  # fmt: skip
    status, body = run_curl(*aws)
    assert status == 201, body
    assert json.loads(body) == {
        "message": "Storage configuration saved successfully.",
        "bucket": "my-company-pdfs",
        "region": "us-east-1",
        "prefix": "cloudlayer/",
    }
    status, body = run_curl("-X", "GET", f"{folio.web_url}/v2/storage", "-H", f"X-API-Key: {fresh.key}")
    assert status == 200
    assert json.loads(body) == {
        "bucket": "my-company-pdfs",
        "region": "us-east-1",
        "accessKeyId": "AKIA...MPLE",
        "secretAccessKey": "****",
        "endpoint": None,
        "prefix": "cloudlayer/",
        "acl": "private",
    }
    assert b"wJalrXUtnFEMI" not in body and b"AKIAIOSFODNN7EXAMPLE" not in body

    others = [
        (
            "https://nyc3.digitaloceanspaces.com",
            """{
    "bucket": "my-space-name",
    "region": "nyc3",
    "accessKeyId": "your-spaces-access-key",
    "secretAccessKey": "your-spaces-secret-key",
    "endpoint": "https://nyc3.digitaloceanspaces.com",
    "prefix": "generated/",
    "acl": "private"
  }""",
        ),
        (
            "https://storage.googleapis.com",
            """{
    "bucket": "my-gcs-bucket",
    "region": "us-central1",
    "accessKeyId": "GOOGTS7C7FUP3AIRVJTE2BCDKINBTES3HC2GY5CBFJDCQ2SYHIPAQKT6EXAMPLE",
    "secretAccessKey": "your-hmac-secret-key",
    "endpoint": "https://storage.googleapis.com",
    "prefix": "cloudlayer-output/"
  }""",
        ),
    ]
    for endpoint, payload in others:
        status, body = run_curl(
            "-X", "POST", f"{folio.web_url}/v2/storage",
            "-H", f"X-API-Key: {fresh.key}",
            "-H", "Content-Type: application/json",
            "-d", payload,
        )  # fmt: skip
        try:
            socket.getaddrinfo(urlsplit(endpoint).hostname, 443)
            resolvable = True
        except OSError:
            resolvable = False
        if resolvable or status == 201:
            assert status == 201, body
            saved = json.loads(body)
            assert saved["message"] == "Storage configuration saved successfully."
            assert saved["bucket"] == json.loads(payload)["bucket"]
        else:
            # This machine cannot resolve the provider's name: the endpoint is refused
            # by the outbound guard (a clear 400 naming the field), never a 500.
            error = json.loads(body)["error"]
            assert status == 400 and error["details"]["field"] == "endpoint", body

    status, body = run_curl("-X", "DELETE", f"{folio.web_url}/v2/storage", "-H", f"X-API-Key: {fresh.key}")
    assert status == 200
    assert json.loads(body) == {
        "message": "Storage configuration deleted. Reverting to default cloud storage."
    }
    assert_error(fresh.http.get("/v2/storage"), 404)


def test_seed_002_async_workflow_under_node(folio: FolioProcess, fresh: DocAccount, tmp_path: Path) -> None:
    """Seed 002's JavaScript async workflow, unchanged but for base URL and key. It
    polls while pending/processing; its `=== "completed"` branch does not fire (our
    final status is `success`), so the asset is then fetched here."""
    out = run_node(seeded(SEED_002_ASYNC_WORKFLOW, folio, fresh.key), tmp_path)
    first = out.stdout.splitlines()[0]
    assert first.startswith("Job started: job_"), out.stdout
    job_id = first.removeprefix("Job started: ")
    job = fresh.http.get(f"/v2/jobs/{job_id}").json()
    assert job["status"] == "success", job  # the script only stopped polling once it left pending
    assets = fresh.http.get("/v2/assets", params={"limit": 1}).json()
    assert len(assets) == 1 and assets[0]["jobId"] == job_id
    downloaded = httpx.get(assets[0]["url"], timeout=30)  # no key
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"] == "application/pdf"
    assert "Hello World" in pdf_text(downloaded.content)

    # Seed 002's "Download an Asset" in JavaScript, for that asset.
    download = seeded(SEED_002_DOWNLOAD, folio, fresh.key).replace("ast_abc123def456", assets[0]["id"])
    download += "\nconsole.log(fileResponse.status, fileBuffer.byteLength, asset.ext);\n"
    out = run_node(download, tmp_path, "download.mjs")
    assert out.stdout.split() == ["200", str(assets[0]["size"]), "pdf"]


# ------------------------------------------------------------------ keys and auth


def test_operator_key_from_admin_cli(folio: FolioProcess) -> None:
    created = json.loads(folio.admin("create-api-key", "--email", "admin@localhost", "--name", "ci"))
    assert created["apiKey"].startswith("cl-") and created["id"].startswith("dk_") and created["name"] == "ci"
    with client(folio, created["apiKey"]) as http:
        response = http.get("/v2/account")
        assert response.status_code == 200
        assert response.json()["email"] == "admin@localhost"
    assert (
        dashboard(
            folio, "DELETE", f"/api/keys?id={created['id']}", f"{folio.access_key}:{folio.secret_key}"
        ).status_code
        == 200
    )
    with client(folio, created["apiKey"]) as http:
        assert_error(http.get("/v2/account"), 401)


def test_missing_and_wrong_keys_are_401(folio: FolioProcess, acct: DocAccount) -> None:
    with client(folio) as http:
        for method, path, body in (
            ("GET", "/v2/getStatus", None),
            ("GET", "/v1/account", None),
            ("GET", "/v2/jobs", None),
            ("GET", "/v2/assets", None),
            ("GET", "/v2/storage", None),
            ("POST", "/v1/html/pdf", {"html": HELLO_B64}),
            ("POST", "/v2/html/pdf", {"html": HELLO_B64}),
        ):
            for headers in (
                {},
                {"X-API-Key": ""},
                {"X-API-Key": "cl-" + "0" * 48},
                {"X-API-Key": acct.key + "x"},
                {"X-API-Key": acct.key[3:]},
                {"X-API-Key": acct.s3_pair},  # an S3 key pair is not a document key
            ):
                error = assert_error(http.request(method, path, json=body, headers=headers), 401)
                assert acct.key not in json.dumps(error)


def test_docgen_keys_create_list_revoke_limit(folio: FolioProcess, fresh: DocAccount) -> None:
    created = fresh.new_key("build server")
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["id"].startswith("dk_") and key["name"] == "build server" and key["apiKey"].startswith("cl-")
    assert key["apiKey"] != fresh.key

    listed = dashboard(folio, "GET", "/api/keys", fresh.s3_pair)
    assert listed.status_code == 200
    doc_keys = [k for k in listed.json()["keys"] if k.get("type") == "docgen"]
    assert {k["id"] for k in doc_keys} == {fresh.key_id, key["id"]}
    assert fresh.key not in listed.text and key["apiKey"] not in listed.text  # shown once
    assert any(k.get("accessKey") == fresh.access_key for k in listed.json()["keys"])  # beside the S3 pairs

    with client(folio, key["apiKey"]) as http:
        assert http.get("/v2/getStatus").json() == {"status": "ok"}
        revoked = dashboard(folio, "DELETE", f"/api/keys?id={key['id']}", fresh.s3_pair)
        assert revoked.status_code == 200, revoked.text
        assert_error(http.get("/v2/getStatus"), 401)  # at once
        assert_error(http.post("/v1/html/pdf", json={"html": HELLO_B64}), 401)
    assert fresh.http.get("/v2/getStatus").status_code == 200  # the other key still works
    assert key["id"] not in dashboard(folio, "GET", "/api/keys", fresh.s3_pair).text

    # At most 5 active: the account has 1, so 4 more, then 403.
    for n in range(4):
        assert fresh.new_key(f"k{n}").status_code == 201
    refused = fresh.new_key("sixth")
    assert_error(refused, 403)
    assert "apiKey" not in refused.text
    docs = [
        k
        for k in dashboard(folio, "GET", "/api/keys", fresh.s3_pair).json()["keys"]
        if k.get("type") == "docgen"
    ]
    assert len(docs) == 5


# ------------------------------------------------------------------ sync / async


def test_v1_sync_headers_and_filename(acct: DocAccount) -> None:
    response = acct.http.post("/v1/html/pdf", json={"html": HELLO_B64, "filename": "my report.pdf"})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == "attachment; filename*=UTF-8''my%20report.pdf"
    assert "Hello World" in pdf_text(response.content)

    response = acct.http.post("/v1/html/image", json={"html": HELLO_B64})
    assert response.status_code == 201
    assert response.headers["content-type"] == "image/png"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename*=UTF-8''") and disposition.endswith(".png")
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_v1_async_true(acct: DocAccount) -> None:
    response = acct.http.post("/v1/html/pdf", json={"html": HELLO_B64, "async": True})
    assert response.status_code == 202
    assert response.headers["content-type"].startswith("application/json")
    job = response.json()
    assert job["status"] == "pending"
    done = wait_job(acct.http, job["id"], version=1)
    assert done["status"] == "success" and done["assetId"]
    asset = acct.http.get(f"/v1/assets/{done['assetId']}").json()
    file = httpx.get(asset["url"], timeout=30)
    assert file.status_code == 200 and "Hello World" in pdf_text(file.content)


def test_v2_sync_without_storage_stores_nothing(fresh: DocAccount) -> None:
    response = fresh.http.post("/v2/html/pdf", json={"html": HELLO_B64, "async": False, "storage": False})
    assert response.status_code == 201
    assert "Hello World" in pdf_text(response.content)
    assert "x-asset-id" not in response.headers
    assert fresh.http.get("/v2/assets").json() == []
    jobs = fresh.http.get("/v2/jobs").json()
    assert len(jobs) == 1 and jobs[0]["status"] == "success" and jobs[0]["assetId"] is None

    stored = fresh.http.post("/v2/html/pdf", json={"html": HELLO_B64, "async": False})
    assert stored.status_code == 201
    assets = fresh.http.get("/v2/assets").json()
    assert [a["id"] for a in assets] == [stored.headers["x-asset-id"]]
    assert httpx.get(assets[0]["url"], timeout=30).content == stored.content


def test_job_json_shape_and_paging(fresh: DocAccount) -> None:
    ids = []
    for n in range(3):
        response = fresh.http.post(
            "/v2/html/pdf", json={"html": b64(f"<p>{n}</p>"), "filename": f"f{n}.pdf", "format": "a4"}
        )
        assert response.status_code == 202
        ids.append(response.json()["id"])
    jobs = [wait_job(fresh.http, job_id) for job_id in ids]
    job = jobs[0]
    assert set(job) >= {
        "id", "status", "type", "timestamp", "params", "assetId", "assetUrl", "previewUrl",
        "processTime", "size", "error", "storage",
    }  # fmt: skip
    assert job["params"] == {"filename": "f0.pdf", "format": "a4"}
    assert isinstance(job["timestamp"], int) and abs(job["timestamp"] / 1000 - time.time()) < 300
    assert job["error"] is None and job["storage"] is None and job["previewUrl"] is None
    assert httpx.get(job["assetUrl"], timeout=30).status_code == 200

    listed = fresh.http.get("/v2/jobs").json()
    assert [j["id"] for j in listed] == list(reversed(ids))
    assert [j["id"] for j in fresh.http.get("/v1/jobs", params={"limit": 1, "offset": 1}).json()] == [ids[1]]
    assert fresh.http.get("/v2/jobs", params={"limit": 100, "offset": 3}).json() == []
    for bad in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "ten"}):
        assert_error(fresh.http.get("/v2/jobs", params=bad), 400)
        assert_error(fresh.http.get("/v2/assets", params=bad), 400)
    assert_error(fresh.http.get("/v2/jobs/job_doesnotexist"), 404)
    assert_error(fresh.http.get("/v2/assets/ast_doesnotexist"), 404)


def test_download_link_needs_its_signature(fresh: DocAccount) -> None:
    response = fresh.http.post("/v2/html/pdf", json={"html": HELLO_B64, "async": False})
    asset_id = response.headers["x-asset-id"]
    url = fresh.http.get(f"/v2/assets/{asset_id}").json()["url"]
    parts = urlsplit(url)
    query = dict(pair.split("=", 1) for pair in parts.query.split("&"))
    assert int(query["expires"]) - time.time() == pytest.approx(7 * 24 * 3600, abs=120)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    bad_sig = "0" * len(query["signature"])
    for params in (
        {},
        {"expires": query["expires"]},
        {"expires": query["expires"], "signature": bad_sig},
        {"expires": str(int(query["expires"]) + 1), "signature": query["signature"]},
        {"expires": "1", "signature": query["signature"]},
    ):
        assert_error(httpx.get(base, params=params, timeout=30), 403)
    assert httpx.get(url, timeout=30).content == response.content


def test_engine_choice(folio: FolioProcess, acct: DocAccount) -> None:
    """`engine`: weasyprint (default for html) or chromium; chromium is a 400 only
    when it is not installed; anything else is a 400 naming the field."""
    health = httpx.get(f"{folio.web_url}/healthz/documents", timeout=30)
    assert health.status_code == 200, health.text
    installed = shutil.which("chromium") is not None
    response = acct.http.post("/v1/html/pdf", json={"html": HELLO_B64, "engine": "chromium"})
    if installed:
        assert response.status_code == 201, response.text
        assert b"HeadlessChrome" in response.content[:2000]  # Chromium's own PDF
        assert "Hello World" in pdf_text(response.content)
    else:
        error = assert_error(response, 400, "engine")
        assert "chromium" in error["message"].lower()
    assert_error(acct.http.post("/v2/html/pdf", json={"html": HELLO_B64, "engine": "gecko"}), 400, "engine")
    ok = acct.http.post("/v1/html/pdf", json={"html": HELLO_B64})
    assert ok.status_code == 201 and b"HeadlessChrome" not in ok.content  # WeasyPrint: the default for html


# ------------------------------------------------------------------ S3 and usage


def test_generated_files_are_s3_objects_and_counted(folio: FolioProcess, fresh: DocAccount) -> None:
    before = fresh.http.get("/v2/account").json()
    assert before["bytesUsed"] == 0 and before["totalJobs"] == 0
    response = fresh.http.post("/v2/html/pdf", json={"html": b64("<h1>On S3</h1>"), "async": False})
    assert response.status_code == 201
    asset = fresh.http.get(f"/v2/assets/{response.headers['x-asset-id']}").json()

    s3 = make_s3_client(folio, fresh.access_key, fresh.secret_key)
    listed = s3.list_objects_v2(Bucket=fresh.bucket)
    assert [(o["Key"], o["Size"]) for o in listed["Contents"]] == [
        (f"{asset['id']}.pdf", len(response.content))
    ]
    obj = s3.get_object(Bucket=fresh.bucket, Key=f"{asset['id']}.pdf")
    assert obj["Body"].read() == response.content
    assert obj["ContentType"] == "application/pdf"
    assert fresh.bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    after = fresh.http.get("/v2/account").json()
    assert after["bytesUsed"] == before["bytesUsed"] + asset["size"]
    assert after["storageUsed"] == after["bytesUsed"]
    assert after["calls"] == 1 and after["totalJobs"] == 1 and after["successJobs"] == 1
    assert after["bytesTotal"] == asset["size"]
    usage = dashboard(folio, "GET", "/api/account", fresh.s3_pair).json()["usage"]
    assert usage["bytesUsed"] == after["bytesUsed"]


# ------------------------------------------------------------------ rate limits


def test_every_json_answer_has_rate_limit_headers(acct: DocAccount) -> None:
    job = acct.http.post("/v2/html/pdf", json={"html": HELLO_B64}).json()
    wait_job(acct.http, job["id"])
    answers = {
        "getStatus": acct.http.get("/v2/getStatus"),
        "account": acct.http.get("/v1/account"),
        "jobs": acct.http.get("/v2/jobs"),
        "job": acct.http.get(f"/v2/jobs/{job['id']}"),
        "assets": acct.http.get("/v2/assets"),
        "async post": acct.http.post("/v2/html/pdf", json={"html": HELLO_B64}),
        "sync post": acct.http.post("/v1/html/pdf", json={"html": HELLO_B64}),
        "storage get": acct.http.get("/v2/storage"),
        "storage delete": acct.http.delete("/v2/storage"),
        "404 job": acct.http.get("/v2/jobs/job_nope"),
        "400 paging": acct.http.get("/v2/jobs", params={"limit": 0}),
        "400 html": acct.http.post("/v2/html/pdf", json={"html": "not base64!"}),
        "400 format": acct.http.post("/v2/html/pdf", json={"html": HELLO_B64, "format": "b5"}),
        "400 storage": acct.http.post("/v2/storage", json={"bucket": "x"}),
    }
    missing = {
        name: r.status_code for name, r in answers.items() if not all(h in r.headers for h in RATE_HEADERS)
    }
    assert not missing, f"answers without X-RateLimit-*: {missing}"
    for response in answers.values():
        assert response.headers["x-ratelimit-limit"] == "1000000"  # unlimited plan
        assert int(response.headers["x-ratelimit-reset"]) >= time.time() - 1


PLANS_CONFIG = """
[plans.default]
max_buckets = 100
write_per_second = 0
read_per_second = 0
list_per_second = 0
dashboard_per_minute = 0
docgen_per_minute = 3

[plans.monthly]
max_buckets = 100
write_per_second = 0
read_per_second = 0
list_per_second = 0
dashboard_per_minute = 0
docgen_per_minute = 0
docgen_calls_per_month = 2
"""


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "docgen-limits", PLANS_CONFIG)


def _same_minute(margin: float = 4.0) -> None:
    """Wait out the end of a calendar minute: the budget's window is the minute."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


def test_per_minute_limit_is_429(limited: FolioProcess) -> None:
    account = signup(limited, "rate")
    try:
        _same_minute()
        answers = [
            account.http.get("/v2/getStatus"),
            account.http.get("/v2/account"),
            account.http.post("/v1/html/pdf", json={"html": HELLO_B64}),
        ]
        assert [r.status_code for r in answers] == [200, 200, 201]
        assert [r.headers["x-ratelimit-limit"] for r in answers] == ["3", "3", "3"]
        assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["2", "1", "0"]
        reset = int(answers[0].headers["x-ratelimit-reset"])
        assert time.time() < reset <= time.time() + 61
        refused = account.http.post("/v1/html/pdf", json={"html": HELLO_B64})
        assert_error(refused, 429)
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert 1 <= int(refused.headers["retry-after"]) <= 61
        assert_error(account.http.get("/v2/getStatus"), 429)
        # Another account has its own budget.
        other = signup(limited, "rate2")
        try:
            assert other.http.get("/v2/getStatus").status_code == 200
        finally:
            other.close()
    finally:
        account.close()


def test_monthly_calls_limit_is_402(limited: FolioProcess) -> None:
    created = limited.create_account("monthly@example.com", plan="monthly")
    key = dashboard(
        limited,
        "POST",
        "/api/keys",
        f"{created['accessKey']}:{created['secretKey']}",
        {"name": "m", "type": "docgen"},
    ).json()["apiKey"]
    with client(limited, key) as http:
        first = http.post("/v1/html/pdf", json={"html": HELLO_B64})
        assert first.status_code == 201
        second = http.post("/v2/html/pdf", json={"html": HELLO_B64})
        assert second.status_code == 202
        wait_job(http, second.json()["id"])
        third = http.post("/v2/html/image", json={"html": HELLO_B64, "async": False})
        assert_error(third, 402)
        assert all(h in third.headers for h in RATE_HEADERS)
        # Informational endpoints do not spend calls.
        assert http.get("/v2/getStatus").status_code == 200
        account = http.get("/v2/account").json()
        assert account["calls"] == 2 and account["callsLimit"] == 2 and account["subType"] == "monthly"
        assert len(http.get("/v2/jobs").json()) == 2  # the refused call made no job
