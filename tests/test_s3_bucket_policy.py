"""S3 bucket policies against the real server (issue 14), as AWS documents them.

PutBucketPolicy / GetBucketPolicy / DeleteBucketPolicy / GetBucketPolicyStatus through
boto3 (default configuration) as the bucket owner A and a second account B; anonymous
requests through httpx with nothing from the environment (no proxy, no credentials).
What the policies decide is checked where people meet it: S3 GET and HEAD, the image
endpoint `/api/img/...` on the web port, a real Chromium page's `<img>`, and the
dashboard's "public bucket" switch, which is now the public-read policy statement.

AWS rules these tests hold Folio to (S3 API reference and IAM policy language):
- an explicit Deny beats any Allow, whoever the caller is, the bucket owner included;
- a policy naming an unknown action, another bucket's resource or no Effect, or one that
  is not JSON, is refused with 400 MalformedPolicy and the stored policy stays;
- only the bucket owner manages the policy (403 for others), and the owner's root can
  always Get/Put/DeleteBucketPolicy even when the policy denies it everything, so a
  bucket can never be locked for good;
- GetBucketPolicy (and GetBucketPolicyStatus) of a bucket without a policy is 404
  NoSuchBucketPolicy, compared with moto where moto implements it.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from tests.browser import Browser, Page, open_page, running_chromium, screenshot
from tests.conftest import TEST_CONFIG, empty_bucket, make_s3_client, moto_client
from tests.folio_process import FolioProcess, running_server
from tests.web_client import page_server

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
VERSION = "2012-10-17"


# ---------------------------------------------------------------- policy documents


def statement(
    effect: str,
    principal: Any,
    action: str | list[str],
    resource: str | list[str],
    condition: dict | None = None,
    sid: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sid:
        out["Sid"] = sid
    out.update({"Effect": effect, "Principal": principal, "Action": action, "Resource": resource})
    if condition is not None:
        out["Condition"] = condition
    return out


def policy_text(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": VERSION, "Statement": list(statements)})


def objects_arn(bucket: str, pattern: str = "*") -> str:
    return f"arn:aws:s3:::{bucket}/{pattern}"


def public_read_statement(bucket: str) -> dict[str, Any]:
    """AWS's "public website" example: everyone may read every object."""
    return statement("Allow", "*", "s3:GetObject", objects_arn(bucket), sid="PublicRead")


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def grants_public_read(statement_: dict[str, Any], bucket: str) -> bool:
    """Does this statement allow anonymous s3:GetObject on every object of `bucket`,
    with no condition? (Principal "*" and {"AWS": "*"} are the same on AWS.)"""
    principal = statement_.get("Principal")
    everyone = principal == "*" or (isinstance(principal, dict) and "*" in _as_list(principal.get("AWS")))
    return (
        statement_.get("Effect") == "Allow"
        and everyone
        and "s3:GetObject" in _as_list(statement_.get("Action"))
        and objects_arn(bucket) in _as_list(statement_.get("Resource"))
        and not statement_.get("Condition")
    )


def stored_policy(s3, bucket: str) -> dict[str, Any]:
    answer = s3.get_bucket_policy(Bucket=bucket)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    return json.loads(answer["Policy"])


def s3_error(call: Callable[[], Any]) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a boto3 call that must fail."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def xml_code(response: httpx.Response) -> str | None:
    return ElementTree.fromstring(response.content).findtext("Code") if response.content else None


def png(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


# ---------------------------------------------------------------- server, accounts, clients


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "bucket-policy", TEST_CONFIG)


@pytest.fixture(scope="module")
def account_a(server: FolioProcess) -> dict:
    """The owner of every bucket the tests make."""
    return server.create_account(f"policy-a-{uuid.uuid4().hex[:8]}@example.com")


@pytest.fixture(scope="module")
def account_b(server: FolioProcess) -> dict:
    """Another account: only what a policy gives it."""
    return server.create_account(f"policy-b-{uuid.uuid4().hex[:8]}@example.com")


@pytest.fixture(scope="module")
def s3_a(server: FolioProcess, account_a: dict):
    return make_s3_client(server, account_a["accessKey"], account_a["secretKey"])


@pytest.fixture(scope="module")
def s3_b(server: FolioProcess, account_b: dict):
    return make_s3_client(server, account_b["accessKey"], account_b["secretKey"])


@pytest.fixture(scope="module")
def anon() -> Iterator[httpx.Client]:
    """Unsigned requests: no Authorization header, no proxy or credentials from the environment."""
    with httpx.Client(trust_env=False, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def dashboard(server: FolioProcess, account_a: dict) -> Iterator[httpx.Client]:
    """A's dashboard JSON API, authenticated with A's key pair (docs/dashboard-api.md)."""
    with httpx.Client(
        base_url=server.web_url,
        trust_env=False,
        timeout=30,
        headers={"X-API-Key": f"{account_a['accessKey']}:{account_a['secretKey']}"},
    ) as client:
        yield client


@pytest.fixture
def make_bucket(s3_a) -> Iterator[Callable[[], str]]:
    """New buckets of A; afterwards their policy goes first (a Deny could refuse the
    cleanup), then their objects and the buckets."""
    made: list[str] = []

    def make() -> str:
        name = f"pol-{uuid.uuid4().hex[:16]}"
        s3_a.create_bucket(Bucket=name)
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            s3_a.delete_bucket_policy(Bucket=name)
            empty_bucket(s3_a, name)
            s3_a.delete_bucket(Bucket=name)
        except Exception:  # noqa: BLE001 - cleanup must not mask the test's own result
            pass


@pytest.fixture
def bucket(make_bucket: Callable[[], str]) -> str:
    return make_bucket()


def anon_get(anon: httpx.Client, server: FolioProcess, bucket: str, key: str) -> httpx.Response:
    return anon.get(f"{server.s3_url}/{bucket}/{key}")


def anon_img(
    anon: httpx.Client, server: FolioProcess, bucket: str, key: str, query: str = "w=8"
) -> httpx.Response:
    return anon.get(f"{server.web_url}/api/img/{bucket}/{key}?{query}")


def dashboard_public_flag(dashboard: httpx.Client, bucket: str) -> bool:
    listed = dashboard.get("/api/buckets")
    assert listed.status_code == 200, listed.text
    return {b["name"]: b["publicRead"] for b in listed.json()["buckets"]}[bucket]


# ---------------------------------------------------------------- Put / Get / Delete / Status


def test_put_get_delete_bucket_policy_round_trip(s3_a, bucket: str) -> None:
    text = policy_text(public_read_statement(bucket))
    put = s3_a.put_bucket_policy(Bucket=bucket, Policy=text)
    assert put["ResponseMetadata"]["HTTPStatusCode"] in (200, 204)

    # The document comes back as it was put.
    assert stored_policy(s3_a, bucket) == json.loads(text)

    deleted = s3_a.delete_bucket_policy(Bucket=bucket)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3_error(lambda: s3_a.get_bucket_policy(Bucket=bucket)) == (404, "NoSuchBucketPolicy")


def test_policy_acl_and_cors_changed_at_once_all_keep_their_change(server: FolioProcess, account_a: dict, bucket: str) -> None:
    # Each sub-resource is one field of the bucket's settings: changed by concurrent
    # requests (one client per thread), none may write back a stale copy of the others.
    clients = [make_s3_client(server, account_a["accessKey"], account_a["secretKey"]) for _ in range(3)]
    policy = policy_text(public_read_statement(bucket))
    cors = {"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["https://a.example"]}]}
    for _round in range(15):
        clients[0].delete_bucket_policy(Bucket=bucket)
        clients[1].delete_bucket_cors(Bucket=bucket)
        clients[2].put_bucket_acl(Bucket=bucket, ACL="private")
        with ThreadPoolExecutor(3) as pool:
            done = [
                pool.submit(clients[0].put_bucket_policy, Bucket=bucket, Policy=policy),
                pool.submit(clients[1].put_bucket_cors, Bucket=bucket, CORSConfiguration=cors),
                pool.submit(clients[2].put_bucket_acl, Bucket=bucket, ACL="public-read"),
            ]
            for future in done:
                future.result()
        assert stored_policy(clients[0], bucket) == json.loads(policy)
        assert clients[1].get_bucket_cors(Bucket=bucket)["CORSRules"][0]["AllowedOrigins"] == ["https://a.example"]
        grants = clients[2].get_bucket_acl(Bucket=bucket)["Grants"]
        assert any(g["Grantee"].get("URI", "").endswith("/AllUsers") for g in grants)


def test_a_new_policy_replaces_the_old_one(s3_a, account_b: dict, bucket: str) -> None:
    s3_a.put_bucket_policy(Bucket=bucket, Policy=policy_text(public_read_statement(bucket)))
    second = policy_text(
        statement("Allow", {"AWS": account_b["accountId"]}, "s3:GetObject", objects_arn(bucket), sid="OnlyB")
    )
    s3_a.put_bucket_policy(Bucket=bucket, Policy=second)
    assert stored_policy(s3_a, bucket) == json.loads(second)


def test_policy_status_says_whether_the_policy_is_public(s3_a, account_b: dict, bucket: str) -> None:
    s3_a.put_bucket_policy(Bucket=bucket, Policy=policy_text(public_read_statement(bucket)))
    assert s3_a.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True

    only_b = statement("Allow", {"AWS": account_b["accountId"]}, "s3:GetObject", objects_arn(bucket))
    s3_a.put_bucket_policy(Bucket=bucket, Policy=policy_text(only_b))
    assert s3_a.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False


def test_no_policy_is_404_no_such_bucket_policy_as_in_moto(s3_a, bucket: str, moto_url: str) -> None:
    moto = moto_client(moto_url)
    moto_bucket = f"pol-{uuid.uuid4().hex[:16]}"
    moto.create_bucket(Bucket=moto_bucket)

    for name, folio_call, moto_call in [
        (
            "GetBucketPolicy",
            lambda: s3_a.get_bucket_policy(Bucket=bucket),
            lambda: moto.get_bucket_policy(Bucket=moto_bucket),
        ),
        (
            "GetBucketPolicyStatus",
            lambda: s3_a.get_bucket_policy_status(Bucket=bucket),
            lambda: moto.get_bucket_policy_status(Bucket=moto_bucket),
        ),
    ]:
        folio_error, moto_error = s3_error(folio_call), s3_error(moto_call)
        assert folio_error == (404, "NoSuchBucketPolicy"), name
        assert folio_error == moto_error, name

    # Deleting a policy that is not there succeeds, on both.
    assert s3_a.delete_bucket_policy(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert moto.delete_bucket_policy(Bucket=moto_bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204


# ---------------------------------------------------------------- the public website policy


def test_public_website_policy_opens_objects_to_anonymous_get_head_and_img(
    server: FolioProcess, s3_a, anon: httpx.Client, dashboard: httpx.Client, bucket: str
) -> None:
    picture = png((32, 24), (200, 40, 40))
    s3_a.put_object(Bucket=bucket, Key="site/pic.png", Body=picture, ContentType="image/png")
    s3_a.put_object(Bucket=bucket, Key="index.html", Body=b"<h1>hi</h1>", ContentType="text/html")

    # Private until the policy says otherwise.
    assert anon_get(anon, server, bucket, "site/pic.png").status_code == 403
    assert anon_img(anon, server, bucket, "site/pic.png").status_code == 403
    assert dashboard_public_flag(dashboard, bucket) is False

    s3_a.put_bucket_policy(Bucket=bucket, Policy=policy_text(public_read_statement(bucket)))

    got = anon_get(anon, server, bucket, "site/pic.png")
    assert got.status_code == 200 and got.content == picture
    assert got.headers["content-type"] == "image/png"
    head = anon.head(f"{server.s3_url}/{bucket}/site/pic.png")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(picture)
    page = anon_get(anon, server, bucket, "index.html")
    assert page.status_code == 200 and page.content == b"<h1>hi</h1>"

    img = anon_img(anon, server, bucket, "site/pic.png", "w=8")
    assert img.status_code == 200, img.text[:300]
    assert Image.open(io.BytesIO(img.content)).size == (8, 6)

    # The dashboard's "public bucket" is this policy, whoever put it.
    assert dashboard_public_flag(dashboard, bucket) is True

    # Reading objects is all it allows: no listing, no writing.
    assert anon.get(f"{server.s3_url}/{bucket}?list-type=2").status_code == 403
    assert anon.put(f"{server.s3_url}/{bucket}/site/new.txt", content=b"x").status_code == 403
    assert anon.delete(f"{server.s3_url}/{bucket}/site/pic.png").status_code == 403

    s3_a.delete_bucket_policy(Bucket=bucket)
    assert anon_get(anon, server, bucket, "site/pic.png").status_code == 403
    assert anon_img(anon, server, bucket, "site/pic.png").status_code == 403


PAGES: dict[str, bytes] = {}


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
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


# Waits for every image (load or error) and reports what the browser made of it.
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


def test_public_website_policy_images_load_in_chromium_and_private_ones_do_not(
    server: FolioProcess,
    s3_a,
    page: Page,
    page_origin: str,
    make_bucket: Callable[[], str],
    tmp_path: Path,
) -> None:
    public, private = make_bucket(), make_bucket()
    for name, color in ((public, (30, 160, 60)), (private, (160, 30, 60))):
        s3_a.put_object(Bucket=name, Key="hero.png", Body=png((120, 80), color), ContentType="image/png")
    s3_a.put_bucket_policy(Bucket=public, Policy=policy_text(public_read_statement(public)))

    sources = {
        "s3_public": f"{server.s3_url}/{public}/hero.png",
        "img_public": f"{server.web_url}/api/img/{public}/hero.png?w=60",
        "s3_private": f"{server.s3_url}/{private}/hero.png",
        "img_private": f"{server.web_url}/api/img/{private}/hero.png?w=60",
    }
    tags = "\n".join(f'<img id="{id_}" src="{src}" alt="{id_}">' for id_, src in sources.items())
    PAGES["/policy.html"] = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>policy</title></head><body>{tags}</body></html>'
    ).encode()

    page.goto(f"{page_origin}/policy.html")
    states = page.evaluate(IMAGE_STATE_JS)

    assert states["s3_public"] == {"complete": True, "w": 120, "h": 80, "decoded": True}, states
    assert states["img_public"] == {"complete": True, "w": 60, "h": 40, "decoded": True}, states
    for refused in ("s3_private", "img_private"):
        assert states[refused]["decoded"] is False and states[refused]["w"] == 0, states

    shot = screenshot(page, tmp_path, "policy-page")
    assert shot.exists()
    picture = Image.open(shot).convert("RGB")
    # The public picture is drawn where the first <img> sits (body margin 8 px) and the
    # private one's red is nowhere on the page.
    assert all(
        abs(got - want) <= 3 for got, want in zip(picture.getpixel((60, 40)), (30, 160, 60), strict=True)
    )
    reddish = [c for _, c in picture.getcolors(maxcolors=1 << 20) if c[0] > 120 and c[1] < 80 and c[2] < 100]
    assert not reddish, reddish


# ---------------------------------------------------------------- Deny wins


def test_deny_on_a_prefix_overrides_the_public_allow(
    server: FolioProcess, s3_a, s3_b, anon: httpx.Client, bucket: str
) -> None:
    s3_a.put_object(Bucket=bucket, Key="open/a.txt", Body=b"open")
    s3_a.put_object(Bucket=bucket, Key="secret/b.txt", Body=b"secret")
    s3_a.put_bucket_policy(
        Bucket=bucket,
        Policy=policy_text(
            public_read_statement(bucket),
            statement("Deny", "*", "s3:GetObject", objects_arn(bucket, "secret/*"), sid="NoSecrets"),
        ),
    )

    assert anon_get(anon, server, bucket, "open/a.txt").content == b"open"
    denied = anon_get(anon, server, bucket, "secret/b.txt")
    assert denied.status_code == 403 and xml_code(denied) == "AccessDenied"
    assert anon.head(f"{server.s3_url}/{bucket}/secret/b.txt").status_code == 403
    assert anon_img(anon, server, bucket, "secret/b.txt").status_code == 403

    assert s3_b.get_object(Bucket=bucket, Key="open/a.txt")["Body"].read() == b"open"
    assert s3_error(lambda: s3_b.get_object(Bucket=bucket, Key="secret/b.txt")) == (403, "AccessDenied")
    # "*" includes the bucket owner: on AWS an explicit Deny binds the owner's root too.
    assert s3_error(lambda: s3_a.get_object(Bucket=bucket, Key="secret/b.txt")) == (403, "AccessDenied")


# ---------------------------------------------------------------- malformed policies


def _malformed_policies(bucket: str) -> dict[str, str]:
    good = public_read_statement(bucket)
    return {
        "not-json": "this is not a policy {",
        "unknown-action": policy_text({**good, "Action": "s3:GetObjekt"}),
        "another-buckets-resource": policy_text({**good, "Resource": "arn:aws:s3:::some-other-bucket/*"}),
        "missing-effect": policy_text({k: v for k, v in good.items() if k != "Effect"}),
    }


@pytest.mark.parametrize("case", ["not-json", "unknown-action", "another-buckets-resource", "missing-effect"])
def test_malformed_policy_is_400_and_keeps_the_old_policy(
    server: FolioProcess, s3_a, anon: httpx.Client, bucket: str, case: str
) -> None:
    s3_a.put_object(Bucket=bucket, Key="still.txt", Body=b"still public")
    old = policy_text(public_read_statement(bucket))
    s3_a.put_bucket_policy(Bucket=bucket, Policy=old)

    bad = _malformed_policies(bucket)[case]
    assert s3_error(lambda: s3_a.put_bucket_policy(Bucket=bucket, Policy=bad)) == (400, "MalformedPolicy")

    assert stored_policy(s3_a, bucket) == json.loads(old)
    assert anon_get(anon, server, bucket, "still.txt").content == b"still public"


def test_malformed_policy_on_a_bucket_without_one_stores_nothing(s3_a, bucket: str) -> None:
    bad = _malformed_policies(bucket)["unknown-action"]
    assert s3_error(lambda: s3_a.put_bucket_policy(Bucket=bucket, Policy=bad)) == (400, "MalformedPolicy")
    assert s3_error(lambda: s3_a.get_bucket_policy(Bucket=bucket)) == (404, "NoSuchBucketPolicy")


# ---------------------------------------------------------------- principals, actions, conditions


def test_another_account_may_put_under_the_prefix_its_statement_names_only(
    server: FolioProcess, s3_a, s3_b, account_b: dict, anon: httpx.Client, bucket: str
) -> None:
    # Nothing before the policy.
    assert s3_error(lambda: s3_b.put_object(Bucket=bucket, Key="uploads/early.txt", Body=b"x")) == (
        403,
        "AccessDenied",
    )
    s3_a.put_bucket_policy(
        Bucket=bucket,
        Policy=policy_text(
            statement(
                "Allow", {"AWS": account_b["accountId"]}, "s3:PutObject", objects_arn(bucket, "uploads/*")
            )
        ),
    )

    put = s3_b.put_object(Bucket=bucket, Key="uploads/from-b.txt", Body=b"hello from B")
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    keys = [o["Key"] for o in s3_a.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["uploads/from-b.txt"]

    assert s3_error(lambda: s3_b.put_object(Bucket=bucket, Key="elsewhere/x.txt", Body=b"x")) == (
        403,
        "AccessDenied",
    )
    assert s3_error(lambda: s3_b.put_object(Bucket=bucket, Key="uploadsX/x.txt", Body=b"x")) == (
        403,
        "AccessDenied",
    )
    # The statement names B: nobody else, and no other action.
    assert anon.put(f"{server.s3_url}/{bucket}/uploads/anon.txt", content=b"x").status_code == 403
    assert s3_error(lambda: s3_b.list_objects_v2(Bucket=bucket)) == (403, "AccessDenied")
    assert s3_error(lambda: s3_b.delete_bucket_policy(Bucket=bucket)) == (403, "AccessDenied")
    keys = [o["Key"] for o in s3_a.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["uploads/from-b.txt"]


def _listed_keys(response: httpx.Response) -> list[str]:
    root = ElementTree.fromstring(response.content)
    return [el.text or "" for el in root.iter(f"{S3_NS}Key")]


def test_list_bucket_with_a_prefix_condition_lists_only_that_prefix(
    server: FolioProcess, s3_a, anon: httpx.Client, bucket: str
) -> None:
    for key in ("public/one.txt", "public/two.txt", "private/three.txt"):
        s3_a.put_object(Bucket=bucket, Key=key, Body=key.encode())
    s3_a.put_bucket_policy(
        Bucket=bucket,
        Policy=policy_text(
            statement(
                "Allow",
                "*",
                "s3:ListBucket",
                f"arn:aws:s3:::{bucket}",
                condition={"StringLike": {"s3:prefix": "public/*"}},
            )
        ),
    )
    base = f"{server.s3_url}/{bucket}"

    listed = anon.get(base, params={"list-type": "2", "prefix": "public/"})
    assert listed.status_code == 200, listed.text
    assert _listed_keys(listed) == ["public/one.txt", "public/two.txt"]
    v1 = anon.get(base, params={"prefix": "public/"})
    assert v1.status_code == 200 and _listed_keys(v1) == ["public/one.txt", "public/two.txt"]

    for params in ({"list-type": "2"}, {"list-type": "2", "prefix": "private/"}, {}):
        refused = anon.get(base, params=params)
        assert refused.status_code == 403 and xml_code(refused) == "AccessDenied", params
    # Listing is not reading.
    assert anon_get(anon, server, bucket, "public/one.txt").status_code == 403


def test_source_ip_condition_lets_in_only_the_named_network(
    server: FolioProcess, s3_a, anon: httpx.Client, bucket: str
) -> None:
    s3_a.put_object(Bucket=bucket, Key="doc.txt", Body=b"by address")

    def allow_from(cidr: str) -> str:
        return policy_text(
            statement(
                "Allow",
                "*",
                "s3:GetObject",
                objects_arn(bucket),
                condition={"IpAddress": {"aws:SourceIp": cidr}},
            )
        )

    s3_a.put_bucket_policy(Bucket=bucket, Policy=allow_from("10.0.0.0/8"))
    assert anon_get(anon, server, bucket, "doc.txt").status_code == 403

    s3_a.put_bucket_policy(Bucket=bucket, Policy=allow_from("127.0.0.0/8"))
    got = anon_get(anon, server, bucket, "doc.txt")
    assert got.status_code == 200 and got.content == b"by address"


def test_deny_without_secure_transport_binds_the_owner_who_can_still_remove_it(
    server: FolioProcess, s3_a, anon: httpx.Client, bucket: str
) -> None:
    s3_a.put_object(Bucket=bucket, Key="doc.txt", Body=b"tls only")
    locked = policy_text(
        statement(
            "Deny",
            "*",
            "s3:*",
            [f"arn:aws:s3:::{bucket}", objects_arn(bucket)],
            condition={"Bool": {"aws:SecureTransport": "false"}},
            sid="TlsOnly",
        )
    )
    s3_a.put_bucket_policy(Bucket=bucket, Policy=locked)

    # Folio's S3 port is plain http: every request matches the Deny, the owner's too.
    assert s3_error(lambda: s3_a.get_object(Bucket=bucket, Key="doc.txt")) == (403, "AccessDenied")
    assert s3_error(lambda: s3_a.put_object(Bucket=bucket, Key="new.txt", Body=b"x")) == (403, "AccessDenied")
    assert s3_error(lambda: s3_a.list_objects_v2(Bucket=bucket)) == (403, "AccessDenied")
    assert anon_get(anon, server, bucket, "doc.txt").status_code == 403

    # The owner's root keeps the policy actions, so the lock can be read and removed.
    assert stored_policy(s3_a, bucket) == json.loads(locked)
    assert s3_a.delete_bucket_policy(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3_a.get_object(Bucket=bucket, Key="doc.txt")["Body"].read() == b"tls only"


# ---------------------------------------------------------------- who manages the policy


def test_only_the_owner_manages_the_policy(
    server: FolioProcess, s3_a, s3_b, anon: httpx.Client, make_bucket: Callable[[], str]
) -> None:
    with_policy, without = make_bucket(), make_bucket()
    text = policy_text(public_read_statement(with_policy))
    s3_a.put_bucket_policy(Bucket=with_policy, Policy=text)

    for name in (with_policy, without):
        assert s3_error(lambda name=name: s3_b.get_bucket_policy(Bucket=name)) == (403, "AccessDenied")
        assert s3_error(
            lambda name=name: s3_b.put_bucket_policy(
                Bucket=name, Policy=policy_text(public_read_statement(name))
            )
        ) == (403, "AccessDenied")
        assert s3_error(lambda name=name: s3_b.delete_bucket_policy(Bucket=name)) == (403, "AccessDenied")

        url = f"{server.s3_url}/{name}?policy"
        for response in (
            anon.get(url),
            anon.put(url, content=policy_text(public_read_statement(name)).encode()),
            anon.delete(url),
        ):
            assert response.status_code == 403, (response.request.method, name, response.text)
            assert xml_code(response) == "AccessDenied"

    # Nothing changed.
    assert stored_policy(s3_a, with_policy) == json.loads(text)
    assert s3_error(lambda: s3_a.get_bucket_policy(Bucket=without)) == (404, "NoSuchBucketPolicy")


# ---------------------------------------------------------------- the dashboard's public switch


def _patch_public(dashboard: httpx.Client, bucket: str, public: bool) -> None:
    patched = dashboard.patch("/api/buckets", json={"name": bucket, "publicRead": public})
    assert patched.status_code == 200, patched.text
    assert patched.json()["publicRead"] is public


def test_dashboard_public_switch_puts_and_removes_the_public_read_policy(
    server: FolioProcess, s3_a, anon: httpx.Client, dashboard: httpx.Client, bucket: str
) -> None:
    s3_a.put_object(Bucket=bucket, Key="pic.png", Body=png((16, 16), (0, 0, 255)), ContentType="image/png")

    _patch_public(dashboard, bucket, True)
    statements = stored_policy(s3_a, bucket)["Statement"]
    assert any(grants_public_read(s, bucket) for s in statements), statements
    assert s3_a.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    assert anon_get(anon, server, bucket, "pic.png").status_code == 200
    assert anon_img(anon, server, bucket, "pic.png").status_code == 200
    assert dashboard_public_flag(dashboard, bucket) is True
    # Public objects, not a public listing.
    assert anon.get(f"{server.s3_url}/{bucket}?list-type=2").status_code == 403

    _patch_public(dashboard, bucket, False)
    assert s3_error(lambda: s3_a.get_bucket_policy(Bucket=bucket)) == (404, "NoSuchBucketPolicy")
    assert anon_get(anon, server, bucket, "pic.png").status_code == 403
    assert anon_img(anon, server, bucket, "pic.png").status_code == 403
    assert dashboard_public_flag(dashboard, bucket) is False


def test_dashboard_public_switch_keeps_the_users_other_statements(
    server: FolioProcess,
    s3_a,
    s3_b,
    account_b: dict,
    anon: httpx.Client,
    dashboard: httpx.Client,
    bucket: str,
) -> None:
    s3_a.put_object(Bucket=bucket, Key="pic.png", Body=png((16, 16), (0, 0, 255)), ContentType="image/png")
    uploads_for_b = statement(
        "Allow",
        {"AWS": account_b["accountId"]},
        "s3:PutObject",
        objects_arn(bucket, "uploads/*"),
        sid="UploadsFromB",
    )
    s3_a.put_bucket_policy(Bucket=bucket, Policy=policy_text(uploads_for_b))
    assert dashboard_public_flag(dashboard, bucket) is False

    _patch_public(dashboard, bucket, True)
    statements = stored_policy(s3_a, bucket)["Statement"]
    assert uploads_for_b in statements, statements
    assert any(grants_public_read(s, bucket) for s in statements), statements
    assert anon_get(anon, server, bucket, "pic.png").status_code == 200
    s3_b.put_object(Bucket=bucket, Key="uploads/one.txt", Body=b"1")

    _patch_public(dashboard, bucket, False)
    assert stored_policy(s3_a, bucket)["Statement"] == [uploads_for_b]
    assert anon_get(anon, server, bucket, "pic.png").status_code == 403
    s3_b.put_object(Bucket=bucket, Key="uploads/two.txt", Body=b"2")
    assert s3_error(lambda: s3_b.put_object(Bucket=bucket, Key="elsewhere.txt", Body=b"x")) == (
        403,
        "AccessDenied",
    )
