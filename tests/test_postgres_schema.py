"""SQLite's and PostgreSQL's schemas kept in step (issue 18): every migration Folio ships runs on
both engines and they end with the same tables, the same columns in the same order (with the
types each engine is given), the same indexes and triggers by name; the usage triggers count the
same; keys and text sort in byte order on PostgreSQL whatever the database's own collation; and a
NUL in a key is refused through the S3 API on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from core.db import Database
from core.db_postgres import PostgresDatabase, to_postgres
from server.runtime import MIGRATIONS
from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess
from tests.pg import drop_database, new_database_url

# The PostgreSQL type of each SQLite affinity (core.db_postgres.to_postgres): integers are 64-bit
# on both engines, reals doubles, blobs bytes.
TYPES = {"INTEGER": "bigint", "REAL": "double precision", "BLOB": "bytea", "TEXT": "text"}


def affinity(declared: str) -> str:
    """SQLite's type affinity of a declared column type (its rules, in its order)."""
    declared = declared.upper()
    if "INT" in declared:
        return "INTEGER"
    if any(word in declared for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in declared or not declared:
        return "BLOB"
    if any(word in declared for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


@dataclass
class Schema:
    # table -> [(column, SQLite's affinity or PostgreSQL's type mapped back, NOT NULL)]
    tables: dict[str, list[tuple[str, str, bool]]]
    # index name -> (table, unique, partial)
    indexes: dict[str, tuple[str, bool, bool]]
    triggers: set[str]


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = Database(tmp_path_factory.mktemp("schema") / "folio.db")
    db.open(MIGRATIONS)
    yield db
    db.close()


@pytest.fixture(scope="module")
def pg_db() -> Iterator[PostgresDatabase]:
    # A database whose own collation is not byte order (en-US): Folio's columns must not care.
    url = new_database_url("schema", icu_locale="en-US")
    db = PostgresDatabase(url, pool_size=2)
    db.open(MIGRATIONS)
    yield db
    db.close()
    drop_database(url)


def sqlite_schema(db: Database) -> Schema:
    def read(c: Any) -> Schema:
        names = [
            r[0]
            for r in c.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        tables, indexes = {}, {}
        for table in names:
            columns = c.execute(f"PRAGMA table_info({table})").fetchall()
            # A PRIMARY KEY column is NOT NULL on PostgreSQL whether declared so or not.
            tables[table] = [
                (name, affinity(kind), bool(notnull or pk)) for _, name, kind, notnull, _, pk in columns
            ]
            for _, name, unique, origin, partial in c.execute(f"PRAGMA index_list({table})"):
                if origin == "c":  # CREATE INDEX, not a constraint's own
                    indexes[name] = (table, bool(unique), bool(partial))
        triggers = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        return Schema(tables, indexes, triggers)

    return db.read(read)


def pg_schema(db: PostgresDatabase) -> Schema:
    back = {pg: sqlite for sqlite, pg in TYPES.items()}

    def read(c: Any) -> Schema:
        tables: dict[str, list[tuple[str, str, bool]]] = {}
        for table, column, kind, nullable in c.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ):
            tables.setdefault(table, []).append((column, back.get(kind, kind), nullable == "NO"))
        indexes = {
            name: (table, bool(unique), bool(partial))
            for name, table, unique, partial in c.execute(
                "SELECT i.relname, t.relname, x.indisunique, x.indpred IS NOT NULL FROM pg_index x"
                " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
                " WHERE t.relnamespace = current_schema()::regnamespace"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)"
            )
        }
        triggers = {
            r[0]
            for r in c.execute(
                "SELECT tgname FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid"
                " WHERE NOT g.tgisinternal AND t.relnamespace = current_schema()::regnamespace"
            )
        }
        return Schema(tables, indexes, triggers)

    return db.read(read)


def test_every_migration_gives_the_same_schema_on_both_engines(
    sqlite_db: Database, pg_db: PostgresDatabase
) -> None:
    lite, pg = sqlite_schema(sqlite_db), pg_schema(pg_db)
    assert sorted(pg.tables) == sorted(lite.tables)
    for table, columns in lite.tables.items():
        assert pg.tables[table] == columns, table
    assert pg.indexes == lite.indexes
    assert pg.triggers == lite.triggers
    assert {"objects_usage_insert", "objects_usage_latest", "parts_usage_delete"} <= pg.triggers
    # The same migrations are on record on both.
    applied = "SELECT package, version FROM schema_migrations ORDER BY package, version"
    assert pg_db.read(lambda c: c.execute(applied).fetchall()) == sqlite_db.read(
        lambda c: c.execute(applied).fetchall()
    )


def test_text_columns_compare_bytes_on_postgresql(pg_db: PostgresDatabase) -> None:
    collations = pg_db.read(
        lambda c: c.execute(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND data_type = 'text'"
        ).fetchall()
    )
    assert collations
    # Every one "C" (byte order), but the email that SQLite compares with NOCASE.
    assert {(t, c) for t, c, collation in collations if collation != "C"} == {("accounts", "email")}
    assert {collation for t, c, collation in collations if (t, c) == ("accounts", "email")} == {
        "folio_nocase"
    }


def test_emails_are_equal_whatever_their_case_on_both_engines(
    sqlite_db: Database, pg_db: PostgresDatabase
) -> None:
    insert = (
        "INSERT INTO accounts (id, canonical_id, email, display_name, plan, is_admin, created_at)"
        " VALUES (?, ?, ?, 'n', 'default', 0, 0)"
    )
    for db, errors in ((sqlite_db, "IntegrityError"), (pg_db, "UniqueViolation")):
        db.write_blocking(lambda c: c.execute(insert, ("acc1", "can1", "Mixed.Case@Example.org")))
        found = db.read(
            lambda c: c.execute(
                "SELECT id FROM accounts WHERE email = ?", ("mixed.case@example.ORG",)
            ).fetchall()
        )
        assert found == [("acc1",)]
        with pytest.raises(Exception) as refused:
            db.write_blocking(lambda c: c.execute(insert, ("acc2", "can2", "MIXED.case@example.org")))
        assert type(refused.value).__name__ == errors
        db.write_blocking(lambda c: c.execute("DELETE FROM accounts"))


def _usage_script(c: Any) -> tuple[int, int]:
    """Statements every write path uses, through the same adapter API on both engines."""
    bucket = c.execute(
        "INSERT INTO buckets (name, account_id, region, created_at) VALUES ('usage', 'acc', 'r', 0) RETURNING id"
    ).fetchone()[0]
    version = (
        "INSERT INTO objects (bucket_id, key, version_id, is_latest, is_delete_marker, size, etag, last_modified)"
        " VALUES (?, ?, ?, ?, ?, ?, 'e', 0)"
    )
    c.execute(version, (bucket, b"a", "v1", 1, 0, 10))
    c.execute(version, (bucket, b"b", "v1", 1, 0, 7))
    c.execute("UPDATE objects SET is_latest = 0 WHERE bucket_id = ? AND key = ?", (bucket, b"a"))
    c.execute(version, (bucket, b"a", "v2", 1, 0, 20))  # a: two versions, one current
    c.execute(version, (bucket, b"b", "m1", 0, 1, 0))  # a marker, not current (counts nothing)
    c.execute(
        "UPDATE objects SET is_latest = 0 WHERE bucket_id = ? AND key = ? AND version_id = 'v1'",
        (bucket, b"b"),
    )
    c.execute(
        "UPDATE objects SET is_latest = 1 WHERE bucket_id = ? AND key = ? AND version_id = 'm1'",
        (bucket, b"b"),
    )
    c.execute(version, (bucket, b"c", "v1", 1, 0, 100))
    c.execute("DELETE FROM objects WHERE bucket_id = ? AND key = ?", (bucket, b"c"))
    c.execute("INSERT INTO uploads (id, bucket_id, key, initiated) VALUES ('u1', ?, ?, 0)", (bucket, b"d"))
    part = (
        "INSERT INTO upload_parts (upload_id, part_number, size, etag, last_modified, segments)"
        " VALUES ('u1', ?, ?, 'e', 0, '[]')"
    )
    c.execute(part, (1, 1000))
    c.execute(part, (2, 500))
    c.execute("DELETE FROM upload_parts WHERE upload_id = 'u1' AND part_number = 2")
    row = c.execute("SELECT bytes_used, object_count FROM buckets WHERE id = ?", (bucket,)).fetchone()
    c.execute("DELETE FROM upload_parts")
    c.execute("DELETE FROM uploads")
    c.execute("DELETE FROM objects WHERE bucket_id = ?", (bucket,))
    emptied = c.execute("SELECT bytes_used, object_count FROM buckets WHERE id = ?", (bucket,)).fetchone()
    c.execute("DELETE FROM buckets WHERE id = ?", (bucket,))
    assert tuple(emptied) == (0, 0)
    return tuple(row)


def test_usage_triggers_count_the_same_on_both_engines(sqlite_db: Database, pg_db: PostgresDatabase) -> None:
    # Versions 10 + 20 + 7 + 0 (the marker) and the one part left, 1000; current objects: a only
    # (b's current version is a delete marker, c was deleted).
    assert sqlite_db.write_blocking(_usage_script) == (1037, 1)
    assert pg_db.write_blocking(_usage_script) == (1037, 1)


def test_keys_and_text_sort_in_byte_order_on_postgresql(pg_db: PostgresDatabase) -> None:
    keys = [b"a", b"B", "é".encode(), b"~"]
    names = ["a", "B", "é", "~"]

    def fill(c: Any) -> None:
        for number, key in enumerate(keys):
            c.execute(
                "INSERT INTO objects (bucket_id, key, version_id, is_latest, size, etag, last_modified)"
                " VALUES (-1, ?, 'null', 1, 0, 'e', 0)",
                (key,),
            )
            c.execute(
                "INSERT INTO blobs (id, size, refcount, created_at) VALUES (?, 0, 1, ?)", (names[number], 0)
            )

    pg_db.write_blocking(fill)
    try:
        listed = pg_db.read(
            lambda c: [r[0] for r in c.execute("SELECT key FROM objects WHERE bucket_id = -1 ORDER BY key")]
        )
        assert listed == sorted(keys) == [b"B", b"a", b"~", "é".encode()]
        after = pg_db.read(
            lambda c: [
                r[0]
                for r in c.execute(
                    "SELECT key FROM objects WHERE bucket_id = -1 AND key > ? ORDER BY key", (b"a",)
                )
            ]
        )
        assert after == [b"~", "é".encode()]
        ids = pg_db.read(
            lambda c: [
                r[0] for r in c.execute("SELECT id FROM blobs WHERE id IN ('a', 'B', 'é', '~') ORDER BY id")
            ]
        )
        assert ids == sorted(names, key=lambda n: n.encode()) == ["B", "a", "~", "é"]
        # The database's own collation would not have: the test would catch a column without "C".
        default = pg_db.read(
            lambda c: [
                r[0] for r in c.execute("SELECT x FROM (VALUES ('a'), ('B'), ('é'), ('~')) v(x) ORDER BY x")
            ]
        )
        assert default != ids
    finally:
        pg_db.write_blocking(lambda c: c.execute("DELETE FROM objects WHERE bucket_id = -1"))
        pg_db.write_blocking(lambda c: c.execute("DELETE FROM blobs WHERE id IN ('a', 'B', 'é', '~')"))


def test_the_translation_of_sqlite_migrations() -> None:
    translated = to_postgres(
        "CREATE TABLE t (\n"
        "    id INTEGER PRIMARY KEY,\n"
        "    other INTEGER NOT NULL REFERENCES u(id), -- INTEGER in a comment stays\n"
        "    ratio REAL, data BLOB, label TEXT DEFAULT 'TEXT'\n"
        ") WITHOUT ROWID;"
    )
    assert translated == (
        "CREATE TABLE t (\n"
        "    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"
        "    other BIGINT NOT NULL, -- INTEGER in a comment stays\n"
        "    ratio DOUBLE PRECISION, data BYTEA, label TEXT COLLATE \"C\" DEFAULT 'TEXT'\n"
        ");"
    )
    for sqlite_only in (
        "CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END;",
        "email TEXT COLLATE NOCASE",
    ):
        with pytest.raises(ValueError, match="postgres="):
            to_postgres(sqlite_only)


# -- a NUL in a key, through the S3 API -----------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FolioProcess]:
    url = new_database_url("nul") if request.param == "postgresql" else ""
    config = f'[database]\nurl = "{url}"\n' if url else ""
    server = FolioProcess(
        data_dir=tmp_path_factory.mktemp(f"nul-{request.param}") / "data", config_text=config
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
        if url:
            drop_database(url)


def test_a_nul_in_a_key_is_refused_on_both_engines(engine_server: FolioProcess) -> None:
    s3 = make_s3_client(engine_server)
    s3.create_bucket(Bucket="nul-keys")
    for key in ("a\x00b", "\x00", "trailing\x00"):
        # A presigned PUT, to read the answer's bytes: S3 writes the key's NUL in the error as
        # &#x0;, which XML parsers (botocore's) refuse.
        url = s3.generate_presigned_url("put_object", Params={"Bucket": "nul-keys", "Key": key})
        refused = httpx.put(url, content=b"x")
        assert refused.status_code == 400, refused.text
        assert b"<Code>InvalidArgument</Code>" in refused.content
        with pytest.raises(ClientError):
            s3.head_object(Bucket="nul-keys", Key=key)
    # Other control characters are keys like any other, on both engines.
    s3.put_object(Bucket="nul-keys", Key="a\x01b", Body=b"kept")
    assert s3.get_object(Bucket="nul-keys", Key="a\x01b")["Body"].read() == b"kept"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="nul-keys")["Contents"]] == ["a\x01b"]
