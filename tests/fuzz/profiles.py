"""Hypothesis profiles for the fuzz layers (docs/fuzzing.md).

Two profiles, chosen by the HYPOTHESIS_PROFILE environment variable:

- "ci" (the default, used by `make test`): a bounded number of examples per target, no
  deadline (the server layer's examples are network round trips), and the example
  database in the repository read-only: every failure a fuzz run ever found and saved is
  replayed first, and `make test` never writes into the working tree.
- "fuzz" (`make fuzz`): many examples per target, and the same database writable, so a
  failure found is shrunk, saved under tests/fuzz/hypothesis-db and, once committed,
  replayed by every later `make test`.

Targets scale their example counts with `examples(n)` (n is the ci count)."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ReadOnlyDatabase

DATABASE_DIR = Path(__file__).resolve().parent / "hypothesis-db"
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
# How many times the ci count each target runs under the fuzz profile.
FUZZ_FACTOR = int(os.environ.get("FOLIO_FUZZ_FACTOR", "50"))

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "print_blob": True,
}
settings.register_profile(
    "ci",
    max_examples=100,
    database=ReadOnlyDatabase(DirectoryBasedExampleDatabase(DATABASE_DIR)),
    **_COMMON,
)
settings.register_profile(
    "fuzz",
    max_examples=100 * FUZZ_FACTOR,
    database=DirectoryBasedExampleDatabase(DATABASE_DIR),
    **_COMMON,
)
settings.load_profile(PROFILE)


def examples(ci_count: int) -> int:
    """A target's example count: `ci_count` under make test, FUZZ_FACTOR times that under make fuzz."""
    return ci_count * FUZZ_FACTOR if PROFILE == "fuzz" else ci_count
