"""Deleting an account and everything it owns (the settings page and `DELETE
/api/account` both call `delete_account`): every bucket with all its objects, versions,
blobs and multipart uploads, its access keys and document API keys, webhooks and their
deliveries, share links, document jobs, assets, saved templates and storage settings,
its sessions and its events.

The order is what keeps a failure or a concurrent request harmless:
1. the doors close first: keys are revoked (their caches forgotten), webhooks deleted
   (the engine stops recording events for the account) and every session ended, so no
   new bucket or object can arrive while the rest goes;
2. each bucket is deleted with its contents through the store, which frees the blob
   files once its transaction has committed (and counts the quota down);
3. one transaction removes every remaining row, the account's own row last.
A crash between the steps leaves an account that still exists, with less in it:
deleting it again finishes the job.

Objects the account wrote into another account's bucket (a WRITE grant) belong to
that bucket and stay, as on S3; a copy of one of its objects elsewhere keeps its blob
(blobs are reference counted)."""

from __future__ import annotations

import sqlite3

from core import sessions as session_rows
from core.accounts import Account, remove_account_rows
from core.jsonapi import ApiError, bad_request
from docgen import jobs as job_rows
from docgen import user_storage
from restapi.files import RestServices
from s3proxy.store.errors import NoSuchBucket

ADMIN_REFUSAL = (
    "The first-start admin account cannot be deleted: it is the operator's account (the "
    "FOLIO_ROOT_* credentials), made only when the server starts with no account at all, so "
    "nothing would make it again and the server would be left without one."
)

# Tables whose packages keep no per-account delete of their own: (table, column naming
# the account). A new table with an account_id column belongs here too; the browser
# test checks every such table of the schema after a deletion.
_ACCOUNT_TABLES = (
    ("shares", "account_id"),  # restapi.shares
    ("doc_keys", "account_id"),  # core.doc_keys
    ("docgen_jobs", "account_id"),  # docgen.jobs
    ("docgen_assets", "account_id"),
    ("docgen_templates", "account_id"),
    ("quota_levels", "account_id"),  # s3proxy.store.quota
    ("events", "account_id"),  # core.events: after the buckets, whose deletion may record some
)


def check_deletable(account: Account, confirm: str) -> None:
    """Refusals before anything is touched: the admin, or a confirmation that is not
    the account's email (typed, compared as logins compare emails: without case)."""
    if account.is_admin:
        raise ApiError(403, "AdminAccount", ADMIN_REFUSAL)
    if confirm.strip().casefold() != account.email.casefold():
        raise bad_request("Type your account's email address to confirm.", field="confirm")


def _running_jobs(conn: sqlite3.Connection, account_id: str) -> int:
    counts = job_rows.job_counts(conn, account_id, 0)
    return counts["totalJobs"] - counts["successJobs"] - counts["errorJobs"]


async def delete_account(services: RestServices, account: Account, confirm: str) -> None:
    check_deletable(account, confirm)
    db = services.store.db
    # A job still rendering would store its file after the buckets are gone.
    running = db.read(lambda c: _running_jobs(c, account.id))
    if running:
        raise ApiError(
            409,
            "JobsRunning",
            f"{running} document job(s) are still running; delete the account once they finish.",
        )

    # 1. Close the doors.
    for key in services.accounts.list_keys(account.id):
        await services.accounts.revoke_key(account.id, key.access_key)
    for doc_key in services.doc_keys.list(account.id):
        await services.doc_keys.revoke(account.id, doc_key.id)
    hook_ids = [
        row[0]
        for row in db.read(
            lambda c: c.execute("SELECT id FROM webhooks WHERE account_id = ?", (account.id,)).fetchall()
        )
    ]
    for hook_id in hook_ids:
        await services.webhooks.delete(account.id, hook_id)
    await services.sessions.end_others(account.id, None)

    # 2. The buckets, with everything in them (the docgen bucket of its assets too). A
    # request authenticated just before step 1 may still make one: look again.
    for _attempt in range(3):
        buckets = services.store.list_buckets(account.id)
        if not buckets:
            break
        for bucket in buckets:
            try:
                await services.store.delete_bucket(bucket, with_contents=True)
            except NoSuchBucket:  # gone meanwhile
                pass
    if services.store.list_buckets(account.id):
        raise ApiError(409, "AccountBusy", "New buckets keep appearing in this account; try again.")

    # 3. Every remaining row, in one transaction.
    def remove_rows(conn: sqlite3.Connection) -> None:
        hooks = [
            row[0] for row in conn.execute("SELECT id FROM webhooks WHERE account_id = ?", (account.id,))
        ]
        for hook_id in {*hook_ids, *hooks}:
            conn.execute("DELETE FROM deliveries WHERE webhook_id = ?", (hook_id,))
        conn.execute("DELETE FROM deliveries WHERE account_id = ?", (account.id,))  # document jobs' webhooks
        conn.execute("DELETE FROM webhooks WHERE account_id = ?", (account.id,))
        for table, column in _ACCOUNT_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (account.id,))  # noqa: S608 - constants
        user_storage.delete(conn, account.id)
        session_rows.remove_account_sessions(conn, account.id)
        remove_account_rows(conn, account.id)

    await db.write(remove_rows)
    services.accounts.forget_account(account.id)
    services.webhooks.load()
