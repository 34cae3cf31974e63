"""Who wrote each version (issue 16, Time Machine): every write path records the caller
(core.acting) on the version it makes, and the dashboard's history names it. S3 PUT,
CopyObject, CompleteMultipartUpload and DeleteObject (its delete marker) under two
different key pairs, the REST file API under an API key, a dashboard upload under a
session, an anonymous PUT a bucket policy allows; each read back from the history page
and from the database row itself."""

from __future__ import annotations

import json
import re
import uuid

import boto3
import httpx

from tests.folio_process import FolioProcess
from tests.server_db import server_db

PASSWORD = "correct horse battery"


def _s3(folio: FolioProcess, access: str, secret: str):
    return boto3.client(
        "s3",
        endpoint_url=folio.s3_url,
        region_name="us-east-1",
        aws_access_key_id=access,
        aws_secret_access_key=secret,
    )


def _writers_in_db(folio: FolioProcess, bucket: str, key: str) -> list[tuple[str | None, int]]:
    """(writer, is_delete_marker) of the key's versions, oldest first, straight from the database."""
    with server_db(folio) as conn:
        return conn.execute(
            "SELECT o.writer, o.is_delete_marker FROM objects o JOIN buckets b ON b.id = o.bucket_id"
            " WHERE b.name = ? AND o.key = ? ORDER BY o.id",
            (bucket, key.encode()),
        ).fetchall()


def test_every_write_path_records_its_writer_and_the_history_names_it(folio: FolioProcess) -> None:
    email = f"writer-{uuid.uuid4().hex[:10]}@example.com"
    web = httpx.Client(base_url=folio.web_url)
    signed = web.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
    assert signed.status_code == 201, signed.text
    first = signed.json()
    second = web.post("/api/keys", json={"name": "backup job"}, headers={"origin": folio.web_url})
    assert second.status_code == 201, second.text
    s3_a = _s3(folio, first["accessKey"], first["secretKey"])
    s3_b = _s3(folio, second.json()["accessKey"], second.json()["secretKey"])
    key_a, key_b = first["accessKey"], second.json()["accessKey"]

    bucket = f"writers-{uuid.uuid4().hex[:10]}"
    s3_a.create_bucket(Bucket=bucket)
    s3_a.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key = "doc.txt"
    s3_a.put_object(Bucket=bucket, Key=key, Body=b"one\n")  # 1: S3 PUT, key A
    s3_b.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": "doc.txt"},
                     MetadataDirective="REPLACE", ContentType="text/plain")  # 2: copy, key B  # fmt: skip
    upload = s3_b.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = s3_b.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"three\n")
    s3_b.complete_multipart_upload(  # 3: Complete, key B
        Bucket=bucket, Key=key, UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )  # fmt: skip
    rest = httpx.post(  # 4: REST file API, key A as an API key
        f"{folio.web_url}/api/v1/files",
        params={"bucket": bucket, "key": key},
        content=b"four\n",
        headers={"x-api-key": f"{key_a}:{first['secretKey']}"},
    )
    assert rest.status_code in (200, 201), rest.text
    # 5: the dashboard's upload endpoint under the session (CSRF token from the upload page).
    upload_page = web.get(f"/buckets/{bucket}/upload")
    token = re.search(r'data-csrf="([^"]+)"', upload_page.text).group(1)  # type: ignore[union-attr]
    dashboard = web.post(
        f"/uploads/{bucket}/object",
        params={"bucket": bucket, "key": key},
        content=b"five\n",
        headers={"x-csrf-token": token, "origin": folio.web_url},
    )
    assert dashboard.status_code == 201, dashboard.text
    # 6: an anonymous PUT, allowed by a bucket policy.
    s3_a.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
                       "Resource": f"arn:aws:s3:::{bucket}/*"}],
    }))  # fmt: skip
    anonymous = httpx.put(f"{folio.s3_url}/{bucket}/{key}", content=b"six\n")
    assert anonymous.status_code == 200, anonymous.text
    s3_b.delete_object(Bucket=bucket, Key=key)  # 7: a delete marker, key B

    assert _writers_in_db(folio, bucket, key) == [
        (key_a, 0), (key_b, 0), (key_b, 0), (key_a, 0), ("dashboard", 0), ("anonymous", 0), (key_b, 1),
    ]  # fmt: skip

    history = web.get(f"/buckets/{bucket}/history", params={"key": key})
    assert history.status_code == 200
    shown = re.findall(r'<td class="writer">([^<]*)</td>', history.text)
    # Newest first, as the page lists them; keys named by their id and name.
    assert shown == [
        f"Key {key_b} (backup job)", "Anonymous", "Dashboard", f"Key {key_a} (default)",
        f"Key {key_b} (backup job)", f"Key {key_b} (backup job)", f"Key {key_a} (default)",
    ]  # fmt: skip

    # A revoked key is still named: the history outlives it.
    revoked = web.delete("/api/keys", params={"id": key_b}, headers={"origin": folio.web_url})
    assert revoked.status_code in (200, 204), revoked.text
    after = web.get(f"/buckets/{bucket}/history", params={"key": key})
    assert re.findall(r'<td class="writer">([^<]*)</td>', after.text)[0] == f"Key {key_b} (backup job)"
    web.close()
