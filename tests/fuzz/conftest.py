"""The fuzz layers' pytest glue: the Hypothesis profile is loaded before any target is
collected (tests/fuzz/profiles.py), and the server layer's counts are printed at the end."""

from __future__ import annotations

import pytest

from tests.fuzz import profiles  # noqa: F401 - loads the HYPOTHESIS_PROFILE profile
from tests.fuzz.stats import SUMMARIES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in SUMMARIES:
        terminalreporter.write_line(line)
