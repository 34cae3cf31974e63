"""A line diff that ends in bounded time whatever the two texts are.

difflib.SequenceMatcher (the standard library's, behind `diff -u`-style output) is
quadratic in the worst case. Measured on the project's 2-core VM: two versions of
10,000 distinct lines with each neighbouring pair swapped take 5.7 s, 20,000 take 25 s,
so a 2 MiB file of 200,000 such lines would take about 40 minutes. Here difflib only
ever gets pieces it finishes quickly, and the whole diff has a deadline:

1. Lines become integers (one dict pass), and the lines the two sides share at their
   start and end are set aside: a typical edit leaves a small middle.
2. A middle with nothing in common is all removed and all added: that is exact. A
   middle of at most DIFFLIB_CELLS line pairs goes to difflib as is.
3. A larger middle is cut at the lines that occur exactly once on each side, along the
   longest chain of them in the same order on both sides (patience diff, as
   `git diff --patience`; O(n log n)); each piece between two such anchors starts
   again at step 1.
4. A large middle with no anchor goes to difflib only when one longest-match search
   of difflib over it is cheap (at most STEP_COST line pairs). Otherwise, or once the
   deadline has passed (difflib is stopped between two of its searches), the piece is
   shown coarse: its old lines removed, its new lines added. That diff is still
   correct (it turns the old text into the new one), only not minimal, and the
   result counts the lines shown so, for the page to say it.

The deadline is wall-clock time: under load a diff gets coarser, never slower."""

from __future__ import annotations

import difflib
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

# Seconds of matching work before the rest of the diff is shown coarse.
DIFF_SECONDS = 2.0
# difflib on its own for pieces of up to this many line pairs (2,000 × 2,000): one of
# its longest-match searches then looks at 4,000,000 pairs at most (0.3 s measured), and
# the deadline stops the searches that follow (two lines in runs of 3 against runs of
# 5, 2,000 lines a side, take difflib 15 s).
DIFFLIB_CELLS = 4_000_000
# A larger piece without anchors goes to difflib when one search over it looks at no
# more line pairs than this (about 0.15 s).
STEP_COST = 2_000_000

Opcode = tuple[str, int, int, int, int]  # difflib's: tag, a[i1:i2], b[j1:j2]


@dataclass(frozen=True)
class LineDiff:
    """The opcodes (difflib's shape, covering both sides in order, neighbours merged)
    and how exact they are."""

    opcodes: list[Opcode]
    coarse_old: int  # old lines inside coarse pieces (shown removed, maybe unchanged)
    coarse_new: int  # new lines inside coarse pieces (shown added)
    timed_out: bool  # the deadline cut the work short (else coarse pieces had no cheap diff)
    seconds: float  # how long the diff took
    budget: float  # the seconds it was given

    @property
    def exact(self) -> bool:
        return not (self.coarse_old or self.coarse_new)

    @property
    def removed(self) -> int:
        return sum(i2 - i1 for tag, i1, i2, _j1, _j2 in self.opcodes if tag != "equal")

    @property
    def added(self) -> int:
        return sum(j2 - j1 for tag, _i1, _i2, j1, j2 in self.opcodes if tag != "equal")


class _OutOfTime(Exception):
    pass


class _DeadlineMatcher(difflib.SequenceMatcher):
    """difflib's matcher, stopped between two longest-match searches past the deadline
    (get_matching_blocks calls find_longest_match once per block it looks for)."""

    def __init__(self, a: Sequence[int], b: Sequence[int], deadline: float) -> None:
        self.deadline = deadline
        # No "popular line" junking: it is difflib's own guard against slow diffs and
        # it makes repeated lines (blank lines, braces) unmatchable; the step bound and
        # the deadline guard this diff instead.
        super().__init__(None, a, b, autojunk=False)

    def find_longest_match(
        self, alo: int = 0, ahi: int | None = None, blo: int = 0, bhi: int | None = None
    ) -> difflib.Match:
        if time.monotonic() > self.deadline:
            raise _OutOfTime
        return super().find_longest_match(alo, ahi, blo, bhi)


@dataclass
class _Work:
    x: list[int]
    y: list[int]
    deadline: float
    coarse_old: int = 0
    coarse_new: int = 0
    timed_out: bool = False

    def coarse(self, alo: int, ahi: int, blo: int, bhi: int) -> list[Opcode]:
        self.coarse_old += ahi - alo
        self.coarse_new += bhi - blo
        return [("replace", alo, ahi, blo, bhi)]


def line_diff(old: Sequence[str], new: Sequence[str], seconds: float = DIFF_SECONDS) -> LineDiff:
    """The diff of two lists of lines, within about `seconds` (plus one bounded step)."""
    start = time.monotonic()
    ids: dict[str, int] = {}
    work = _Work(
        [ids.setdefault(line, len(ids)) for line in old],
        [ids.setdefault(line, len(ids)) for line in new],
        start + seconds,
    )
    del ids
    opcodes: list[Opcode] = []
    # Pieces still to diff ("todo") and finished opcodes, last first: popped in order.
    stack: list[Opcode] = [("todo", 0, len(work.x), 0, len(work.y))]
    while stack:
        piece = stack.pop()
        if piece[0] == "todo":
            stack.extend(reversed(_piece(work, *piece[1:])))
        else:
            _append(opcodes, piece)
    return LineDiff(
        opcodes, work.coarse_old, work.coarse_new, work.timed_out, time.monotonic() - start, seconds
    )


def _append(opcodes: list[Opcode], piece: Opcode) -> None:
    """Adds a piece, merged with its neighbour of the same kind, as difflib would give it:
    one opcode per run of equal lines and one per change between two such runs."""
    tag, i1, i2, j1, j2 = piece
    if i1 == i2 and j1 == j2:
        return
    if opcodes:
        last_tag, li1, _li2, lj1, _lj2 = opcodes[-1]
        if (last_tag == "equal") == (tag == "equal"):
            tag, i1, j1 = last_tag, li1, lj1
            opcodes.pop()
    if tag != "equal":
        tag = "replace" if i1 < i2 and j1 < j2 else "delete" if i1 < i2 else "insert"
    opcodes.append((tag, i1, i2, j1, j2))


def _piece(work: _Work, alo: int, ahi: int, blo: int, bhi: int) -> list[Opcode]:
    """One piece of the diff, as finished opcodes and smaller pieces still to do."""
    x, y = work.x, work.y
    head = tail = 0
    while alo + head < ahi and blo + head < bhi and x[alo + head] == y[blo + head]:
        head += 1
    while alo + head < ahi - tail and blo + head < bhi - tail and x[ahi - tail - 1] == y[bhi - tail - 1]:
        tail += 1
    middle = _middle(work, alo + head, ahi - tail, blo + head, bhi - tail)
    return [
        ("equal", alo, alo + head, blo, blo + head),
        *middle,
        ("equal", ahi - tail, ahi, bhi - tail, bhi),
    ]


def _middle(work: _Work, alo: int, ahi: int, blo: int, bhi: int) -> list[Opcode]:
    if alo == ahi or blo == bhi:
        return [("replace", alo, ahi, blo, bhi)]
    xa, yb = work.x[alo:ahi], work.y[blo:bhi]
    if set(xa).isdisjoint(yb):
        return [("replace", alo, ahi, blo, bhi)]  # nothing in common: exact as it is
    if len(xa) == 1 or len(yb) == 1:
        return _one_line(xa, yb, alo, ahi, blo, bhi)
    if time.monotonic() > work.deadline:
        work.timed_out = True
        return work.coarse(alo, ahi, blo, bhi)
    if len(xa) * len(yb) <= DIFFLIB_CELLS:
        return _difflib(work, xa, yb, alo, ahi, blo, bhi)
    count_a, count_b = Counter(xa), Counter(yb)
    anchors = _unique_anchors(xa, yb, count_a, count_b)
    if anchors:
        return _between(anchors, alo, ahi, blo, bhi)
    if _step_cost(xa, count_b) <= STEP_COST:
        return _difflib(work, xa, yb, alo, ahi, blo, bhi)
    return work.coarse(alo, ahi, blo, bhi)


def _one_line(xa: list[int], yb: list[int], alo: int, ahi: int, blo: int, bhi: int) -> list[Opcode]:
    """One line on a side that the other side has (checked): it is the one line kept,
    matched at its first place on the other side, as difflib matches it."""
    if len(xa) == 1:
        at = blo + yb.index(xa[0])
        return [
            ("replace", alo, alo, blo, at),
            ("equal", alo, ahi, at, at + 1),
            ("replace", ahi, ahi, at + 1, bhi),
        ]
    at = alo + xa.index(yb[0])
    return [
        ("replace", alo, at, blo, blo),
        ("equal", at, at + 1, blo, bhi),
        ("replace", at + 1, ahi, bhi, bhi),
    ]


def _difflib(
    work: _Work, xa: list[int], yb: list[int], alo: int, ahi: int, blo: int, bhi: int
) -> list[Opcode]:
    try:
        codes = _DeadlineMatcher(xa, yb, work.deadline).get_opcodes()
    except _OutOfTime:
        work.timed_out = True
        return work.coarse(alo, ahi, blo, bhi)
    return [(tag, alo + i1, alo + i2, blo + j1, blo + j2) for tag, i1, i2, j1, j2 in codes]


def _unique_anchors(
    xa: list[int], yb: list[int], count_a: Counter, count_b: Counter
) -> list[tuple[int, int]]:
    """The longest chain of lines found once on each side, in the same order on both:
    patience sorting over their places on the new side (longest increasing subsequence)."""
    where_b = {line: j for j, line in enumerate(yb) if count_b[line] == 1}
    pairs = [(i, where_b[line]) for i, line in enumerate(xa) if count_a[line] == 1 and line in where_b]
    tops: list[int] = []  # the smallest place ending a chain of each length
    ends: list[int] = []  # which pair that is
    before = [-1] * len(pairs)
    for k, (_i, j) in enumerate(pairs):
        length = bisect_left(tops, j)
        if length == len(tops):
            tops.append(j)
            ends.append(k)
        else:
            tops[length] = j
            ends[length] = k
        before[k] = ends[length - 1] if length else -1
    chain = []
    k = ends[-1] if ends else -1
    while k >= 0:
        chain.append(pairs[k])
        k = before[k]
    chain.reverse()
    return chain


def _between(anchors: list[tuple[int, int]], alo: int, ahi: int, blo: int, bhi: int) -> list[Opcode]:
    """The anchors as equal runs (neighbouring anchors joined: an unchanged stretch of
    unique lines is one run, not one piece per line) and the pieces between them."""
    pieces: list[Opcode] = []
    i = j = k = 0
    while k < len(anchors):
        ai, bj = anchors[k]
        run = 1
        while k + run < len(anchors) and anchors[k + run] == (ai + run, bj + run):
            run += 1
        if ai > i or bj > j:
            pieces.append(("todo", alo + i, alo + ai, blo + j, blo + bj))
        pieces.append(("equal", alo + ai, alo + ai + run, blo + bj, blo + bj + run))
        i, j, k = ai + run, bj + run, k + run
    pieces.append(("todo", alo + i, ahi, blo + j, bhi))
    return pieces


def _step_cost(xa: list[int], count_b: Counter) -> int:
    """The line pairs one longest-match search of difflib looks at over this piece: for
    each old line, its places on the new side."""
    return sum(n for n in map(count_b.get, xa) if n is not None)
