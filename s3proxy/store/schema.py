"""The engine's tables. Versions and delete markers are in the object model from
the first migration, so turning versioning on never needs a data migration."""

from __future__ import annotations

from core.db import Migration

MIGRATIONS = [
    Migration(
        "s3proxy.store",
        1,
        """
        CREATE TABLE buckets (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            -- '' (never versioned), 'Enabled' or 'Suspended', as S3 reports it
            versioning TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            -- JSON for bucket sub-resources added later (cors, public access, retention)
            settings TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX buckets_by_account ON buckets(account_id, name);

        -- One row per object version. Keys are BLOBs of UTF-8 so every comparison is
        -- a byte comparison: S3 lists in UTF-8 byte order.
        CREATE TABLE objects (
            id INTEGER PRIMARY KEY,
            bucket_id INTEGER NOT NULL REFERENCES buckets(id),
            key BLOB NOT NULL,
            version_id TEXT NOT NULL,          -- 'null' for the null version
            is_latest INTEGER NOT NULL,
            is_delete_marker INTEGER NOT NULL DEFAULT 0,
            size INTEGER NOT NULL,
            etag TEXT NOT NULL,
            last_modified REAL NOT NULL,
            storage_class TEXT NOT NULL DEFAULT 'STANDARD',
            content_type TEXT,
            headers TEXT,                      -- JSON: Cache-Control, Content-Disposition, ...
            user_meta TEXT,                    -- JSON: x-amz-meta-* without the prefix
            checksums TEXT,                    -- JSON: {"CRC32": "...", ...}
            inline_data BLOB,                  -- small objects live here
            segments TEXT                      -- JSON [[blob_id, size], ...] for the rest
        );
        CREATE UNIQUE INDEX objects_by_version ON objects(bucket_id, key, version_id);
        -- Covering index for listings of current objects.
        CREATE INDEX objects_latest ON objects(bucket_id, key, is_delete_marker, size, etag, last_modified,
            storage_class) WHERE is_latest = 1;

        -- Blob files under blobs/, reference counted (copies and multipart share them).
        CREATE TABLE blobs (
            id TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            refcount INTEGER NOT NULL,
            created_at REAL NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
    Migration(
        "s3proxy.store",
        2,
        """
        -- Multipart objects remember their parts (sizes, ETags, checksums) for GET ?partNumber=.
        ALTER TABLE objects ADD COLUMN parts TEXT;

        CREATE TABLE uploads (
            id TEXT PRIMARY KEY,
            bucket_id INTEGER NOT NULL REFERENCES buckets(id),
            key BLOB NOT NULL,
            initiated REAL NOT NULL,
            storage_class TEXT NOT NULL DEFAULT 'STANDARD',
            content_type TEXT,
            headers TEXT,
            user_meta TEXT,
            checksum_algorithm TEXT,           -- CRC32, ... as given to CreateMultipartUpload
            checksum_type TEXT                 -- COMPOSITE or FULL_OBJECT
        );
        CREATE INDEX uploads_by_key ON uploads(bucket_id, key, initiated);
        CREATE INDEX uploads_by_age ON uploads(initiated);

        -- Each part's bytes are blobs (reference counted like an object's).
        CREATE TABLE upload_parts (
            upload_id TEXT NOT NULL REFERENCES uploads(id),
            part_number INTEGER NOT NULL,
            size INTEGER NOT NULL,
            etag TEXT NOT NULL,
            checksums TEXT,
            last_modified REAL NOT NULL,
            segments TEXT NOT NULL,
            PRIMARY KEY (upload_id, part_number)
        ) WITHOUT ROWID;
        """,
    ),
    Migration(
        "s3proxy.store",
        3,
        """
        -- Usage, kept exact by triggers so that no write path can forget it: every
        -- stored version (current or not) and every part of an unfinished upload.
        ALTER TABLE buckets ADD COLUMN bytes_used INTEGER NOT NULL DEFAULT 0;
        -- Current objects (delete markers and noncurrent versions excluded).
        ALTER TABLE buckets ADD COLUMN object_count INTEGER NOT NULL DEFAULT 0;
        -- Canned ACL of a version: NULL (private) or 'public-read'.
        ALTER TABLE objects ADD COLUMN acl TEXT;

        UPDATE buckets SET
            bytes_used = (SELECT coalesce(sum(size), 0) FROM objects WHERE bucket_id = buckets.id)
                + (SELECT coalesce(sum(p.size), 0) FROM upload_parts p JOIN uploads u ON u.id = p.upload_id
                   WHERE u.bucket_id = buckets.id),
            object_count = (SELECT count(*) FROM objects
                            WHERE bucket_id = buckets.id AND is_latest = 1 AND is_delete_marker = 0);

        CREATE TRIGGER objects_usage_insert AFTER INSERT ON objects BEGIN
            UPDATE buckets SET bytes_used = bytes_used + NEW.size,
                object_count = object_count + (NEW.is_latest AND NOT NEW.is_delete_marker)
            WHERE id = NEW.bucket_id;
        END;
        CREATE TRIGGER objects_usage_delete AFTER DELETE ON objects BEGIN
            UPDATE buckets SET bytes_used = bytes_used - OLD.size,
                object_count = object_count - (OLD.is_latest AND NOT OLD.is_delete_marker)
            WHERE id = OLD.bucket_id;
        END;
        CREATE TRIGGER objects_usage_latest AFTER UPDATE OF is_latest ON objects
            WHEN OLD.is_latest != NEW.is_latest AND NOT NEW.is_delete_marker BEGIN
            UPDATE buckets SET object_count = object_count + NEW.is_latest - OLD.is_latest
            WHERE id = NEW.bucket_id;
        END;
        CREATE TRIGGER parts_usage_insert AFTER INSERT ON upload_parts BEGIN
            UPDATE buckets SET bytes_used = bytes_used + NEW.size
            WHERE id = (SELECT bucket_id FROM uploads WHERE id = NEW.upload_id);
        END;
        CREATE TRIGGER parts_usage_delete AFTER DELETE ON upload_parts BEGIN
            UPDATE buckets SET bytes_used = bytes_used - OLD.size
            WHERE id = (SELECT bucket_id FROM uploads WHERE id = OLD.upload_id);
        END;

        -- Quota levels already announced per account (0 below 80%, 1 warned, 2 full),
        -- so each crossing records one event; and when a write was last refused.
        CREATE TABLE quota_levels (
            account_id TEXT PRIMARY KEY,
            level INTEGER NOT NULL DEFAULT 0,
            refused_at REAL
        ) WITHOUT ROWID;
        """,
        # The same triggers as PL/pgSQL functions. SQLite's `NEW.is_latest AND NOT
        # NEW.is_delete_marker` is 1 or 0 on integers; PostgreSQL needs the CASE. Every write
        # holds the writers' advisory lock (core.db_postgres), so the counters stay exact
        # when nodes race.
        postgres="""
        ALTER TABLE buckets ADD COLUMN bytes_used BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE buckets ADD COLUMN object_count BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE objects ADD COLUMN acl TEXT COLLATE "C";

        UPDATE buckets SET
            bytes_used = (SELECT coalesce(sum(size), 0) FROM objects WHERE bucket_id = buckets.id)
                + (SELECT coalesce(sum(p.size), 0) FROM upload_parts p JOIN uploads u ON u.id = p.upload_id
                   WHERE u.bucket_id = buckets.id),
            object_count = (SELECT count(*) FROM objects
                            WHERE bucket_id = buckets.id AND is_latest = 1 AND is_delete_marker = 0);

        CREATE FUNCTION objects_usage_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE buckets SET bytes_used = bytes_used + NEW.size,
                object_count = object_count
                    + CASE WHEN NEW.is_latest <> 0 AND NEW.is_delete_marker = 0 THEN 1 ELSE 0 END
            WHERE id = NEW.bucket_id;
            RETURN NULL;
        END $$;
        CREATE TRIGGER objects_usage_insert AFTER INSERT ON objects
            FOR EACH ROW EXECUTE FUNCTION objects_usage_insert();

        CREATE FUNCTION objects_usage_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE buckets SET bytes_used = bytes_used - OLD.size,
                object_count = object_count
                    - CASE WHEN OLD.is_latest <> 0 AND OLD.is_delete_marker = 0 THEN 1 ELSE 0 END
            WHERE id = OLD.bucket_id;
            RETURN NULL;
        END $$;
        CREATE TRIGGER objects_usage_delete AFTER DELETE ON objects
            FOR EACH ROW EXECUTE FUNCTION objects_usage_delete();

        CREATE FUNCTION objects_usage_latest() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE buckets SET object_count = object_count + NEW.is_latest - OLD.is_latest
            WHERE id = NEW.bucket_id;
            RETURN NULL;
        END $$;
        CREATE TRIGGER objects_usage_latest AFTER UPDATE OF is_latest ON objects
            FOR EACH ROW WHEN (OLD.is_latest <> NEW.is_latest AND NEW.is_delete_marker = 0)
            EXECUTE FUNCTION objects_usage_latest();

        CREATE FUNCTION parts_usage_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE buckets SET bytes_used = bytes_used + NEW.size
            WHERE id = (SELECT bucket_id FROM uploads WHERE id = NEW.upload_id);
            RETURN NULL;
        END $$;
        CREATE TRIGGER parts_usage_insert AFTER INSERT ON upload_parts
            FOR EACH ROW EXECUTE FUNCTION parts_usage_insert();

        CREATE FUNCTION parts_usage_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE buckets SET bytes_used = bytes_used - OLD.size
            WHERE id = (SELECT bucket_id FROM uploads WHERE id = OLD.upload_id);
            RETURN NULL;
        END $$;
        CREATE TRIGGER parts_usage_delete AFTER DELETE ON upload_parts
            FOR EACH ROW EXECUTE FUNCTION parts_usage_delete();

        CREATE TABLE quota_levels (
            account_id TEXT COLLATE "C" PRIMARY KEY,
            level BIGINT NOT NULL DEFAULT 0,
            refused_at DOUBLE PRECISION
        );
        """,
    ),
    Migration(
        "s3proxy.store",
        4,
        """
        -- Completed multipart uploads, remembered for a while (a day, or until their object
        -- is no longer the key's current version) so that a Complete an SDK sends again
        -- after losing the first answer gets that answer again, not NoSuchUpload.
        CREATE TABLE completed_uploads (
            id TEXT PRIMARY KEY,
            bucket_id INTEGER NOT NULL,
            key BLOB NOT NULL,
            object_id INTEGER NOT NULL,        -- objects.id of the version it made
            version_id TEXT NOT NULL,
            -- With the version id, what tells that version from a later row given the same
            -- id (a deleted row's id is reused, and unversioned keys are all 'null').
            etag TEXT NOT NULL,
            last_modified REAL NOT NULL,
            parts TEXT NOT NULL,               -- JSON [[number, etag], ...] as the Complete named them
            completed_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX completed_uploads_by_age ON completed_uploads(completed_at);
        """,
    ),
    Migration(
        "s3proxy.store",
        5,
        """
        -- ACL grants and bucket policies replace the public-read flag. A bucket that was
        -- public served every object to anyone but did not list: exactly the usual
        -- website policy (anyone may s3:GetObject on bucket/*), with a private ACL so no
        -- anonymous listing appears that was not there. Bucket names are [a-z0-9.-], so
        -- concatenating them into the JSON needs no escaping.
        UPDATE buckets SET settings = json_set(
            json_remove(settings, '$.acl'),
            '$.policy',
            '{"Version":"2012-10-17","Statement":[{"Sid":"FolioPublicRead","Effect":"Allow",'
                || '"Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::' || name || '/*"}]}'
        )
        WHERE json_extract(settings, '$.acl') = 'public-read';
        """,
        # jsonb's text keeps the same members (its own key order and spacing: read as JSON).
        postgres="""
        UPDATE buckets SET settings = (
            (settings::jsonb - 'acl') || jsonb_build_object('policy',
                '{"Version":"2012-10-17","Statement":[{"Sid":"FolioPublicRead","Effect":"Allow",'
                    || '"Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::' || name || '/*"}]}')
        )::text
        WHERE settings::jsonb ->> 'acl' = 'public-read';
        """,
    ),
    Migration(
        "s3proxy.store",
        6,
        """
        -- Who wrote each version (core.acting): an access key id, 'dashboard',
        -- 'anonymous'; NULL for Folio's own writes and for every version written before.
        ALTER TABLE objects ADD COLUMN writer TEXT;
        """,
    ),
    Migration(
        "s3proxy.store",
        7,
        """
        -- Integrity (s3proxy.store.integrity): the CRC32C of every 1 MiB piece of a blob, 4
        -- big-endian bytes each, recorded when it is written and checked on every read. NULL for
        -- blobs written before this migration until the scrub or `folio check` computes it.
        ALTER TABLE blobs ADD COLUMN crc32c BLOB;
        -- When a read or a scrub found the blob damaged (a piece failed its checksum, the file
        -- is short or gone); cleared by a check that finds it sound again (restored from backup).
        ALTER TABLE blobs ADD COLUMN damaged_at REAL;
        -- Inline objects: the CRC32C of inline_data (NULL for blob-backed rows, and for inline
        -- rows written before, until a scrub), and when it was found damaged.
        ALTER TABLE objects ADD COLUMN crc32c INTEGER;
        ALTER TABLE objects ADD COLUMN damaged_at REAL;
        -- Normally empty: /healthz counts damage without a scan.
        CREATE INDEX blobs_damaged ON blobs(damaged_at) WHERE damaged_at IS NOT NULL;
        CREATE INDEX objects_damaged ON objects(damaged_at) WHERE damaged_at IS NOT NULL;

        -- The summaries of the latest scrubs and checks (the last few are kept): when the next
        -- background scrub is due, and what /healthz reports after a restart.
        CREATE TABLE scrub_runs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,                -- 'scrub' (background) or 'check' (folio check)
            started_at REAL NOT NULL,
            finished_at REAL NOT NULL,
            report TEXT NOT NULL               -- JSON: s3proxy.store.integrity.ScrubSummary
        );
        """,
    ),
]
