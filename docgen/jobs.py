"""Jobs and assets in the database, and their JSON as cloudlayer's API returns it.
A job row exists from the moment a request is accepted; a pending job keeps what
its worker needs (the pickled RenderJob) so it runs after a restart."""

from __future__ import annotations

import json
import pickle
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.db import Migration

MIGRATIONS = [
    Migration(
        "docgen.jobs",
        1,
        """
        CREATE TABLE docgen_jobs (
            id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            type TEXT NOT NULL,                -- e.g. "html-pdf", "url-image"
            status TEXT NOT NULL,              -- pending, success, error
            params TEXT NOT NULL,              -- JSON: the request, without its document
            work BLOB,                         -- pickled RenderJob while pending
            options TEXT NOT NULL,             -- JSON: filename, storage, webhook, version
            timestamp INTEGER NOT NULL,        -- ms
            asset_id TEXT,
            process_time INTEGER,              -- ms
            size INTEGER,
            error TEXT,
            delivery TEXT                      -- JSON: the user-storage upload's outcome
        ) WITHOUT ROWID;
        CREATE INDEX docgen_jobs_by_account ON docgen_jobs(account_id, timestamp);
        CREATE INDEX docgen_jobs_pending ON docgen_jobs(timestamp) WHERE status = 'pending';

        CREATE TABLE docgen_assets (
            id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL,
            account_id TEXT NOT NULL,
            ext TEXT NOT NULL,
            type TEXT NOT NULL,
            size INTEGER NOT NULL,
            bucket TEXT NOT NULL,
            key TEXT NOT NULL,
            filename TEXT NOT NULL,
            preview_key TEXT,
            timestamp INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX docgen_assets_by_account ON docgen_assets(account_id, timestamp);
        """,
    ),
    # Housekeeping finds expired assets and old finished jobs by age, without a scan.
    Migration(
        "docgen.jobs",
        2,
        """
        CREATE INDEX docgen_assets_by_time ON docgen_assets(timestamp);
        CREATE INDEX docgen_jobs_finished ON docgen_jobs(timestamp) WHERE status != 'pending';
        """,
    ),
]

# Fields of a request that are the document itself: not repeated in the job's params.
_DOCUMENT_FIELDS = ("html", "template", "data")


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def public_params(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _DOCUMENT_FIELDS}


@dataclass
class Job:
    id: str
    account_id: str
    type: str
    status: str
    params: dict[str, Any]
    options: dict[str, Any]
    timestamp: int
    asset_id: str | None = None
    process_time: int | None = None
    size: int | None = None
    error: str | None = None
    delivery: dict[str, Any] | None = None


@dataclass
class Asset:
    id: str
    job_id: str
    account_id: str
    ext: str
    type: str
    size: int
    bucket: str
    key: str
    filename: str
    preview_key: str | None
    timestamp: int


_JOB_COLUMNS = "id, account_id, type, status, params, options, timestamp, asset_id, process_time, size, error, delivery"
_ASSET_COLUMNS = "id, job_id, account_id, ext, type, size, bucket, key, filename, preview_key, timestamp"


def _job(row: tuple) -> Job:
    return Job(
        row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]), row[6], row[7], row[8], row[9],
        row[10], json.loads(row[11]) if row[11] else None,
    )


def _asset(row: tuple) -> Asset:
    return Asset(*row)


def new_job_id() -> str:
    return "job_" + uuid.uuid4().hex[:20]


def new_asset_id() -> str:
    return "ast_" + uuid.uuid4().hex[:20]


def insert_job(conn: sqlite3.Connection, job: Job, work: object) -> None:
    conn.execute(
        f"INSERT INTO docgen_jobs ({_JOB_COLUMNS}, work) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            job.id, job.account_id, job.type, job.status, json.dumps(job.params), json.dumps(job.options),
            job.timestamp, None, None, None, None, None, pickle.dumps(work),
        ),
    )


def finish_job(conn: sqlite3.Connection, job: Job, asset: Asset | None) -> None:
    """The job's outcome, and its asset, in one transaction."""
    if asset is not None:
        conn.execute(
            f"INSERT INTO docgen_assets ({_ASSET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                asset.id, asset.job_id, asset.account_id, asset.ext, asset.type, asset.size, asset.bucket,
                asset.key, asset.filename, asset.preview_key, asset.timestamp,
            ),
        )
    conn.execute(
        "UPDATE docgen_jobs SET status = ?, asset_id = ?, process_time = ?, size = ?, error = ?, delivery = ?,"
        " work = NULL WHERE id = ?",
        (
            job.status, job.asset_id, job.process_time, job.size, job.error,
            json.dumps(job.delivery) if job.delivery is not None else None, job.id,
        ),
    )


def get_job(conn: sqlite3.Connection, account_id: str, job_id: str) -> Job | None:
    row = conn.execute(
        f"SELECT {_JOB_COLUMNS} FROM docgen_jobs WHERE id = ? AND account_id = ?", (job_id, account_id)
    ).fetchone()
    return _job(row) if row else None


def list_jobs(
    conn: sqlite3.Connection,
    account_id: str,
    limit: int,
    offset: int,
    *,
    status: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[Job]:
    """A page of the account's jobs, newest first; the dashboard narrows it by status
    and by a time range (ms, `until_ms` excluded)."""
    where, args = ["account_id = ?"], [account_id]
    if status:
        where.append("status = ?")
        args.append(status)
    if since_ms is not None:
        where.append("timestamp >= ?")
        args.append(since_ms)
    if until_ms is not None:
        where.append("timestamp < ?")
        args.append(until_ms)
    rows = conn.execute(
        f"SELECT {_JOB_COLUMNS} FROM docgen_jobs WHERE {' AND '.join(where)} ORDER BY timestamp DESC, id DESC"
        " LIMIT ? OFFSET ?",
        (*args, limit, offset),
    ).fetchall()
    return [_job(row) for row in rows]


def has_running_jobs(conn: sqlite3.Connection, account_id: str) -> bool:
    """Whether any of the account's jobs is still pending (the jobs page polls while so)."""
    row = conn.execute(
        "SELECT 1 FROM docgen_jobs WHERE status = 'pending' AND account_id = ? LIMIT 1", (account_id,)
    ).fetchone()
    return row is not None


def pending_jobs(conn: sqlite3.Connection) -> list[tuple[Job, object]]:
    rows = conn.execute(
        f"SELECT {_JOB_COLUMNS}, work FROM docgen_jobs WHERE status = 'pending' ORDER BY timestamp"
    ).fetchall()
    found = []
    for row in rows:
        try:
            work = pickle.loads(row[-1]) if row[-1] is not None else None
        except Exception:  # noqa: BLE001 - written by another version: the job fails, visibly
            work = None
        found.append((_job(row[:-1]), work))
    return found


def get_asset(conn: sqlite3.Connection, asset_id: str, account_id: str | None = None) -> Asset | None:
    if account_id is None:
        row = conn.execute(f"SELECT {_ASSET_COLUMNS} FROM docgen_assets WHERE id = ?", (asset_id,)).fetchone()
    else:
        row = conn.execute(
            f"SELECT {_ASSET_COLUMNS} FROM docgen_assets WHERE id = ? AND account_id = ?", (asset_id, account_id)
        ).fetchone()
    return _asset(row) if row else None


def list_assets(conn: sqlite3.Connection, account_id: str, limit: int, offset: int) -> list[Asset]:
    rows = conn.execute(
        f"SELECT {_ASSET_COLUMNS} FROM docgen_assets WHERE account_id = ?"
        " ORDER BY timestamp DESC, id DESC LIMIT ? OFFSET ?",
        (account_id, limit, offset),
    ).fetchall()
    return [_asset(row) for row in rows]


def expired_assets(conn: sqlite3.Connection, made_before_ms: int, limit: int) -> list[tuple[str, str]]:
    """(account id, asset id) of up to `limit` assets made before `made_before_ms`, oldest
    first: housekeeping deletes each with its stored files (DocService.delete_asset)."""
    return conn.execute(
        "SELECT account_id, id FROM docgen_assets WHERE timestamp < ? ORDER BY timestamp LIMIT ?",
        (made_before_ms, limit),
    ).fetchall()


def month_start_ms(now: float) -> int:
    """The start (UTC) of the calendar month `now` falls in, in ms."""
    day = datetime.fromtimestamp(now, UTC)
    return int(datetime(day.year, day.month, 1, tzinfo=UTC).timestamp() * 1000)


def prune_jobs(conn: sqlite3.Connection, finished_before_ms: int, limit: int) -> int:
    """Delete up to `limit` finished jobs accepted before `finished_before_ms` (one batch
    of housekeeping); a pending job is never touched. The caller keeps the current
    month's jobs: the plan's monthly document calls are counted from these rows
    (job_counts). Returns how many went."""
    return conn.execute(
        "DELETE FROM docgen_jobs WHERE id IN (SELECT id FROM docgen_jobs"
        " WHERE timestamp < ? AND status != 'pending' ORDER BY timestamp LIMIT ?)",
        (finished_before_ms, limit),
    ).rowcount


def job_counts(conn: sqlite3.Connection, account_id: str, since_ms: int) -> dict[str, int]:
    row = conn.execute(
        # FILTER, not sum() of a comparison: PostgreSQL has no sum of booleans.
        "SELECT count(*), count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status = 'error'),"
        " coalesce(sum(size), 0), coalesce(sum(process_time), 0),"
        " count(*) FILTER (WHERE timestamp >= ?) FROM docgen_jobs WHERE account_id = ?",
        (since_ms, account_id),
    ).fetchone()
    return {
        "totalJobs": row[0], "successJobs": row[1], "errorJobs": row[2], "bytesTotal": row[3],
        "computeTimeTotal": row[4], "calls": row[5],
    }


# --- the account's saved templates (usable as templateId) -------------------------

TEMPLATE_MIGRATIONS = [
    Migration(
        "docgen.templates",
        1,
        """
        CREATE TABLE docgen_templates (
            id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            name TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at INTEGER NOT NULL     -- ms
        ) WITHOUT ROWID;
        CREATE INDEX docgen_templates_by_account ON docgen_templates(account_id, created_at);
        """,
    )
]
MAX_SAVED_TEMPLATES = 100


def save_template(conn: sqlite3.Connection, account_id: str, name: str, body: str) -> dict[str, Any] | None:
    """A new saved template; None when the account already has the most allowed."""
    count = conn.execute("SELECT count(*) FROM docgen_templates WHERE account_id = ?", (account_id,)).fetchone()[0]
    if count >= MAX_SAVED_TEMPLATES:
        return None
    row = ("tpl_" + uuid.uuid4().hex[:20], account_id, name, body, now_ms())
    conn.execute("INSERT INTO docgen_templates (id, account_id, name, body, created_at) VALUES (?, ?, ?, ?, ?)", row)
    return _template_json(row)


def _template_json(row: tuple) -> dict[str, Any]:
    return {"id": row[0], "name": row[2], "size": len(row[3].encode()), "timestamp": iso_ms(row[4])}


def list_templates(conn: sqlite3.Connection, account_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, account_id, name, body, created_at FROM docgen_templates WHERE account_id = ?"
        " ORDER BY created_at DESC, id DESC",
        (account_id,),
    ).fetchall()
    return [_template_json(row) for row in rows]


def template_body(conn: sqlite3.Connection, account_id: str, template_id: str) -> str | None:
    row = conn.execute(
        "SELECT body FROM docgen_templates WHERE id = ? AND account_id = ?", (template_id, account_id)
    ).fetchone()
    return row[0] if row else None


def template_row(conn: sqlite3.Connection, account_id: str, template_id: str) -> dict[str, Any] | None:
    """A saved template with its body (the dashboard's editor opens it)."""
    row = conn.execute(
        "SELECT id, account_id, name, body, created_at FROM docgen_templates WHERE id = ? AND account_id = ?",
        (template_id, account_id),
    ).fetchone()
    return {**_template_json(row), "body": row[3]} if row else None


def delete_asset(conn: sqlite3.Connection, account_id: str, asset_id: str) -> Asset | None:
    """Forget an asset (its job keeps its record); the caller deletes the stored files."""
    asset = get_asset(conn, asset_id, account_id)
    if asset is not None:
        conn.execute("DELETE FROM docgen_assets WHERE id = ? AND account_id = ?", (asset_id, account_id))
    return asset


def delete_template(conn: sqlite3.Connection, account_id: str, template_id: str) -> bool:
    return bool(
        conn.execute("DELETE FROM docgen_templates WHERE id = ? AND account_id = ?", (template_id, account_id)).rowcount
    )
