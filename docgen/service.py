"""Running document jobs: render in the worker pool, store the file in the account's
first-party bucket (visible over S3, counted in its quota), record the asset, upload
to the user's own storage, notify the job's webhook. Pending jobs survive a restart:
their rows hold what they need and `start()` runs them again."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from core.accounts import Account, Accounts
from core.config import Config
from core.db import Database
from core.doc_keys import DocKeys
from core.leases import Claims
from core.secrets import SecretBox
from core.webhooks import Webhooks
from docgen import jobs as job_rows
from docgen import user_storage
from docgen.budget import MinuteBudget
from docgen.chromium import ChromiumEngine, find_chromium
from docgen.jobs import Asset, Job
from docgen.options import RenderJob, bad
from docgen.output import Rendered, RenderError
from docgen.templates import TemplateJob, TemplateProblem
from docgen.workers import RenderTimeout, WorkerDied, WorkerPool
from s3proxy.store.engine import Store
from s3proxy.store.errors import StoreError
from s3proxy.store.models import ObjectMeta

log = logging.getLogger("folio.docgen")


def _pending(conn: sqlite3.Connection, job_id: str) -> bool:
    row = conn.execute("SELECT 1 FROM docgen_jobs WHERE id = ? AND status = 'pending'", (job_id,)).fetchone()
    return row is not None


@dataclass(frozen=True)
class Outcome:
    job: Job
    rendered: Rendered | None
    asset: Asset | None


class DocService:
    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        doc_keys: DocKeys,
        db: Database,
        box: SecretBox,
        config: Config,
        webhooks: Webhooks,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.doc_keys = doc_keys
        self.db = db
        self.box = box
        self.config = config
        self.settings = config.docgen
        self.webhooks = webhooks
        self.pool = WorkerPool(self.settings.workers or os.cpu_count() or 1, self.settings.recycle_after)
        # Templates run in processes of their own, bounded in time and memory: a hostile
        # one costs its own worker, never the event loop or the server's memory.
        self.templates = WorkerPool(
            max(1, self.settings.template_workers),
            self.settings.recycle_after,
            task="template",
            memory_bytes=self.settings.template_memory_mb * 1024 * 1024,
            niceness=10,
        )
        self.chromium = ChromiumEngine(
            find_chromium() if self.settings.chromium else None,
            self.settings.chromium_concurrency,
            self.settings.chromium_restart_after,
            self.settings.allow_private_targets,
            self.settings.allow_loopback_targets,
            self.settings.max_fetch_bytes,
        )
        self._link_key = box.derive("docgen-asset-links")
        # The accounts' per-minute document budget: the API's endpoints and the
        # dashboard's template previews spend the same one.
        self.budget = MinuteBudget()
        self._tasks: set[asyncio.Task] = set()
        # With several nodes (or workers) sharing the database, a job runs on the node that
        # holds its claim (server/cluster.py sets this); None: this process runs them all.
        self.claims: Claims | None = None
        self._running: set[str] = set()
        self._resume = asyncio.Event()  # `resume_soon()`: a node is gone, its jobs are free

    async def start(self) -> None:
        """Resume the jobs a previous run left pending (the workers start with the first):
        with claims, those no live node runs (claimed here first, so each runs once)."""
        found = {job.id: (job, work) for job, work in self.db.read(job_rows.pending_jobs)}
        if self.claims is not None and found:

            def claim(conn: sqlite3.Connection) -> list[str]:
                # Still pending (another node may have finished it since the read) and not
                # already running here; then ours, unless a live node has it.
                return [
                    job_id
                    for job_id in found
                    if job_id not in self._running and _pending(conn, job_id) and self._claim(conn, job_id)
                ]

            found = {job_id: found[job_id] for job_id in await self.db.write(claim)}
        for job_id, (job, work) in found.items():
            if job_id not in self._running:
                self._spawn(job, work)

    async def run(self) -> None:
        """The background task of `folio serve`: resume pending jobs (with claims, again
        every lease period: a job whose node died is taken over); close the browser at the end."""
        try:
            await self.start()
            while self.claims is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._resume.wait(), self.claims.seconds)
                self._resume.clear()
                await self.start()
            await asyncio.Event().wait()
        finally:
            await self.chromium.close()

    def resume_soon(self) -> None:
        """Look for pending jobs to claim now, not at the next period (a node was found dead
        and its claims released: server/cluster.py)."""
        self._resume.set()

    def health(self) -> dict[str, Any]:
        return {
            "weasyprint": {"workers": self.pool.size, "started": self.pool.started},
            "templates": {"workers": self.templates.size, "started": self.templates.started},
            "chromium": self.chromium.health(),
        }

    def close(self) -> None:
        self.pool.close()
        self.templates.close()

    # --- templates -----------------------------------------------------------

    async def render_template(self, source: str, data: Any) -> str:
        """The HTML of a template and its data, evaluated in a template worker;
        TemplateProblem (a 400) for anything wrong with them, limits included."""
        html = await self._evaluate(TemplateJob(source, data))
        assert isinstance(html, str)
        return html

    async def check_template(self, source: str) -> None:
        """TemplateProblem unless the template parses (saved templates, when saved)."""
        await self._evaluate(TemplateJob(source, parse_only=True))

    async def _evaluate(self, job: TemplateJob) -> object:
        seconds = self.settings.template_seconds
        try:
            return await self.templates.call(job, seconds)
        except RenderTimeout as exc:
            raise TemplateProblem(f"The template took longer than a template may ({seconds:g} s).") from exc
        except WorkerDied as exc:
            raise TemplateProblem(
                "The template stopped the process evaluating it"
                " (it needed more memory or stack than a template may use)."
            ) from exc
        except RenderError as exc:
            raise TemplateProblem(str(exc)) from exc

    async def replace_template(
        self, account_id: str, template_id: str, name: object, text: str
    ) -> dict[str, Any] | None:
        """Replace a saved template's name and body in place (the dashboard's "Save"):
        its id stays, so requests naming it as templateId render the new version. The
        cloudlayer API has no update; this is not one of its routes.

        Checked first (name, and that the template parses: an ApiError 400 otherwise),
        then one UPDATE in one transaction: an invalid template, or a write that fails,
        leaves the saved template exactly as it was. None: the account has no such
        template (deleted meanwhile)."""
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise bad("name", "name is required (up to 200 characters).")
        try:
            await self.check_template(text)
        except TemplateProblem as exc:
            raise bad("template", str(exc)) from exc
        clean = name.strip()
        return await self.db.write(lambda c: _replace_template_row(c, account_id, template_id, clean, text))

    # --- links ---------------------------------------------------------------

    def link(self, asset_id: str, which: str = "file") -> tuple[int, str]:
        """(expires, signature) of a pre-authenticated download link."""
        expires = int(time.time()) + self.settings.asset_link_seconds
        return expires, self.link_signature(asset_id, which, expires)

    def link_signature(self, asset_id: str, which: str, expires: int) -> str:
        return hmac.new(self._link_key, f"{asset_id}\n{which}\n{expires}".encode(), hashlib.sha256).hexdigest()

    # --- jobs ----------------------------------------------------------------

    def new_job(self, account: Account, job_type: str, params: dict[str, Any], options: dict[str, Any]) -> Job:
        return Job(job_rows.new_job_id(), account.id, job_type, "pending", params, options, job_rows.now_ms())

    async def accept(self, job: Job, work: RenderJob) -> None:
        """Record an async job (durably) and start it."""
        self._running.add(job.id)  # before the write: start() must not resume it meanwhile
        try:
            await self.db.write(lambda c: (job_rows.insert_job(c, job, work), self._claim(c, job.id)))
        except BaseException:
            self._running.discard(job.id)
            raise
        self._spawn(job, work)

    def _claim(self, conn: sqlite3.Connection, job_id: str) -> bool:
        return self.claims is None or self.claims.take(conn, f"docgen-job:{job_id}")

    def _release(self, conn: sqlite3.Connection, job_id: str) -> None:
        if self.claims is not None:
            self.claims.release(conn, f"docgen-job:{job_id}")

    def _spawn(self, job: Job, work: object) -> None:
        task = asyncio.create_task(self._run_recorded(job, work))
        self._tasks.add(task)
        self._running.add(job.id)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _task: self._running.discard(job.id))

    async def _run_recorded(self, job: Job, work: object) -> None:
        try:
            if not isinstance(work, RenderJob):
                job.status, job.error = "error", "The job could not be resumed."
                await self.db.write(lambda c: (job_rows.finish_job(c, job, None), self._release(c, job.id)))
            else:
                await self.execute(job, work, store=True, recorded=True)
        except Exception:  # noqa: BLE001 - a job must never take the server down
            log.exception("document job %s failed unexpectedly", job.id)

    async def execute(self, job: Job, work: RenderJob, *, store: bool, recorded: bool = False) -> Outcome:
        """Render; store the file (unless `store` is false); record the job's outcome
        (inserting the row if it was not `recorded`); deliver; notify."""
        started = time.monotonic()
        rendered: Rendered | None = None
        asset: Asset | None = None
        try:
            rendered = await self.render(work, job.options.get("timeout", 30000) / 1000)
            job.size = len(rendered.data)
            if store:
                asset = await self._store(job, rendered)
                job.asset_id = asset.id
            job.status = "success"
        except (RenderError, RenderTimeout) as exc:
            job.status, job.error = "error", str(exc)
        except StoreError as exc:
            job.status = "error"
            job.error = (
                "Storing the document would exceed your storage quota."
                if exc.code == "QuotaExceeded"
                else f"The document could not be stored: {exc.message or exc.code}"
            )
        job.process_time = int((time.monotonic() - started) * 1000)
        if rendered is not None and job.status == "success":
            # Before the job is recorded as done: a client that sees `success` sees where
            # the file went too, and a crash before this point runs the job again.
            await self._deliver(job, rendered)

        def record(conn) -> None:
            if not recorded:
                job_rows.insert_job(conn, job, None)
            job_rows.finish_job(conn, job, asset)
            if recorded:
                self._release(conn, job.id)

        await self.db.write(record)
        await self._notify(job)
        return Outcome(job, rendered, asset)

    async def render(self, work: RenderJob, timeout: float) -> Rendered:
        """Render with the engine the work names (RenderError, RenderTimeout), nothing
        stored or recorded: jobs, and the dashboard's template previews."""
        if work.engine == "chromium":
            return await self.chromium.render(work, timeout)
        return await self.pool.run(work, timeout)

    async def delete_asset(self, account_id: str, asset_id: str) -> bool:
        """Delete an asset's record and its stored file and preview (gone already: fine)."""
        asset = await self.db.write(lambda c: job_rows.delete_asset(c, account_id, asset_id))
        if asset is None:
            return False
        bucket = self.store.bucket(asset.bucket)
        if bucket is not None:
            for key in filter(None, (asset.key, asset.preview_key)):
                try:
                    await self.store.delete_object(bucket, key)
                except StoreError:
                    log.info("asset %s: %s was already gone", asset_id, key)
        return True

    async def _bucket(self, account_id: str):
        name = f"docs-{account_id[:12]}"
        found = self.store.bucket(name)
        if found is not None and found.account_id == account_id:
            return found
        bucket, _created = await self.store.create_bucket(account_id, name, first_party=True)
        return bucket

    async def _store(self, job: Job, rendered: Rendered) -> Asset:
        bucket = await self._bucket(job.account_id)
        asset_id = job_rows.new_asset_id()
        filename = job.options.get("filename") or f"{asset_id}.{rendered.ext}"
        key = f"{asset_id}.{rendered.ext}"
        await self.store.put_bytes(bucket, key, rendered.data, ObjectMeta(content_type=rendered.content_type))
        preview_key = None
        if rendered.preview is not None:
            preview_key = f"{asset_id}.preview.png"
            await self.store.put_bytes(bucket, preview_key, rendered.preview, ObjectMeta(content_type="image/png"))
        return Asset(
            asset_id, job.id, job.account_id, rendered.ext, rendered.content_type, len(rendered.data), bucket.name,
            key, filename, preview_key, job_rows.now_ms(),
        )

    async def _deliver(self, job: Job, rendered: Rendered) -> None:
        if not job.options.get("userStorage", True):
            return
        storage = self.db.read(lambda c: user_storage.load(c, self.box, job.account_id))
        if storage is None:
            return
        filename = job.options.get("filename") or f"{job.asset_id or job.id}.{rendered.ext}"
        job.delivery = await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: user_storage.upload(
                storage,
                filename,
                rendered.data,
                rendered.content_type,
                allow_private=self.settings.allow_private_targets,
                allow_loopback=self.settings.allow_loopback_targets,
            ),
        )

    async def _notify(self, job: Job) -> None:
        url = job.options.get("webhook")
        if not url:
            return
        body = json.dumps(self.job_json(job, job.options.get("baseUrl", "")), separators=(",", ":"))
        await self.webhooks.send_once(job.account_id, url, "job." + job.status, body)

    # --- JSON ----------------------------------------------------------------

    def asset_url(self, base: str, asset_id: str, which: str = "file") -> str:
        expires, signature = self.link(asset_id, which)
        return f"{base}/v2/assets/{asset_id}/{which}?expires={expires}&signature={signature}"

    def job_json(self, job: Job, base: str) -> dict[str, Any]:
        asset = self.db.read(lambda c: job_rows.get_asset(c, job.asset_id)) if job.asset_id else None
        return {
            "id": job.id,
            "status": job.status,
            "type": job.type,
            "timestamp": job.timestamp,
            "params": job.params,
            "assetId": job.asset_id,
            "assetUrl": self.asset_url(base, asset.id) if asset else None,
            "previewUrl": self.asset_url(base, asset.id, "preview") if asset and asset.preview_key else None,
            "processTime": job.process_time,
            "size": job.size,
            "error": job.error,
            "storage": job.delivery,
        }

    def asset_json(self, asset: Asset, base: str) -> dict[str, Any]:
        return {
            "id": asset.id,
            "jobId": asset.job_id,
            "ext": asset.ext,
            "type": asset.type,
            "size": asset.size,
            "url": self.asset_url(base, asset.id),
            "timestamp": job_rows.iso_ms(asset.timestamp),
        }


def _replace_template_row(
    conn: sqlite3.Connection, account_id: str, template_id: str, name: str, body: str
) -> dict[str, Any] | None:
    """The row of docgen_templates (docgen/jobs.py) replaced; its id and creation time kept."""
    replaced = conn.execute(
        "UPDATE docgen_templates SET name = ?, body = ? WHERE id = ? AND account_id = ?",
        (name, body, template_id, account_id),
    ).rowcount
    if not replaced:
        return None
    row = job_rows.template_row(conn, account_id, template_id)
    return {key: value for key, value in row.items() if key != "body"} if row else None
