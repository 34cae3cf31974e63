"""Counts of the server layer's requests, for the summary line `make fuzz` prints."""

from __future__ import annotations

from dataclasses import dataclass, field

# Summary lines collected while the server layer runs; conftest prints them at the end.
SUMMARIES: list[str] = []


@dataclass
class FuzzStats:
    requests: int = 0
    server_errors: int = 0  # 5xx other than the deliberate ones
    dropped: int = 0  # connection closed or reset without an answer
    hangs: int = 0  # no answer within the client timeout
    by_status: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def answered(self, status: int) -> None:
        self.requests += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1

    def summary(self, peak_rss_kib: int, start_rss_kib: int, end_rss_kib: int, seconds: float) -> str:
        statuses = " ".join(f"{code}:{count}" for code, count in sorted(self.by_status.items()))
        return (
            f"fuzz server: {self.requests} requests in {seconds:.0f} s, {self.server_errors} 5xx, "
            f"{self.dropped} dropped, {self.hangs} hangs; server RSS {start_rss_kib // 1024} MiB after setup, "
            f"{end_rss_kib // 1024} MiB at the end, peak (VmHWM) {peak_rss_kib // 1024} MiB; statuses {statuses}"
        )
