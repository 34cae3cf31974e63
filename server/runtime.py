"""Opening and closing everything one Folio process owns: the database, the
secret box, the store, the accounts, and the applications built on them."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from core import accounts as accounts_module
from core import cache_epochs
from core import doc_keys as doc_keys_module
from core import events as events_module
from core import leases as leases_module
from core import nodes as nodes_module
from core import sessions as sessions_module
from core import webhooks as webhooks_module
from core.accounts import Accounts, NewAccount
from core.config import Config
from core.db import Database, open_database
from core.secrets import SecretBox
from docgen import jobs as docgen_jobs
from docgen import user_storage as docgen_storage
from restapi import shares as shares_module
from s3proxy.store import quota as quota_module
from s3proxy.store import schema as store_schema
from s3proxy.store.blob_store import open_blob_store
from s3proxy.store.blobs import make_dirs_durable
from s3proxy.store.engine import Store

log = logging.getLogger("folio")

MIGRATIONS = [
    *accounts_module.MIGRATIONS,
    *events_module.MIGRATIONS,
    *sessions_module.MIGRATIONS,
    *webhooks_module.MIGRATIONS,
    *store_schema.MIGRATIONS,
    *shares_module.MIGRATIONS,
    *doc_keys_module.MIGRATIONS,
    *docgen_jobs.MIGRATIONS,
    *docgen_jobs.TEMPLATE_MIGRATIONS,
    *docgen_storage.MIGRATIONS,
    *leases_module.MIGRATIONS,
    *nodes_module.MIGRATIONS,
    *cache_epochs.MIGRATIONS,
    *quota_module.MIGRATIONS,
]


@dataclass
class Runtime:
    config: Config
    db: Database
    box: SecretBox
    store: Store
    accounts: Accounts
    webhooks: webhooks_module.Webhooks
    doc_keys: doc_keys_module.DocKeys

    def close(self) -> None:
        self.store.close()
        self.db.close()


def master_key_path(config: Config) -> Path:
    """`[auth] master_key_file` (FOLIO_MASTER_KEY_FILE), or master.key in the data directory.
    Every process serving one database must use the same key: it decrypts the stored
    secrets and derives the signing keys (core.secrets)."""
    configured = config.auth.master_key_file
    return Path(configured) if configured else Path(config.storage.data_dir) / "master.key"


def open_runtime(config: Config, *, recover: bool = True) -> Runtime:
    data_dir = Path(config.storage.data_dir)
    make_dirs_durable(data_dir)
    box = SecretBox.from_key_file(master_key_path(config))
    db = open_database(config)  # [database] url: SQLite's folio.db in data_dir, or PostgreSQL
    db.open(MIGRATIONS)
    store = Store(config, db, open_blob_store(config))  # [blobs]: the data directory or an upstream S3
    accounts = Accounts(db, box, config.accounts.default_plan)
    store.plan_of = lambda account_id: config.plan(accounts.plan_name(account_id))
    webhooks = webhooks_module.Webhooks(db, box, config.webhooks)
    webhooks.load()
    store.event_accounts = webhooks.listening
    store.events_recorded = webhooks.wake.set
    if recover:
        store.recover()
    return Runtime(config, db, box, store, accounts, webhooks, doc_keys_module.DocKeys(db, accounts))


def ensure_admin_account(runtime: Runtime, out=sys.stdout) -> NewAccount | None:
    """First start: create the admin account and print its credentials once."""
    if runtime.accounts.count() > 0:
        return None
    created = runtime.accounts.create_account_blocking(
        os.environ.get("FOLIO_ROOT_EMAIL", "admin@localhost"),
        os.environ.get("FOLIO_ROOT_PASSWORD") or accounts_module.new_secret_key()[:20],
        display_name="admin",
        access_key=os.environ.get("FOLIO_ROOT_ACCESS_KEY") or None,
        secret_key=os.environ.get("FOLIO_ROOT_SECRET_KEY") or None,
        is_admin=True,
        plan=runtime.config.accounts.admin_plan,  # no rate limits by default (config.toml)
    )
    print(
        "\nFolio created its admin account. These credentials are shown once; keep them:\n"
        f"  Access key: {created.access_key}\n"
        f"  Secret key: {created.secret_key}\n"
        f"  Email:      {created.account.email}\n"
        f"  Password:   {created.password}\n",
        file=out,
        flush=True,
    )
    return created
