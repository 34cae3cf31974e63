"""The sizes a template's operators, filters and functions may ask for. Jinja2's
sandbox stops attribute escapes and bounds `range()`, but not `'x'.ljust(10**9)`,
`'%0999999999d' % 1`, `10 ** 10**6`, `1.5|round(10**9, 'floor')` or a long separator
joined between a hundred thousand items: each builds its gigabyte (or spins for
minutes) before any check of the output could see it. Here each is refused up front,
with a message that says which limit it passed. What no cap can foresee (a string
doubled in a loop) is stopped by the worker process's own time and memory limits
(docgen/workers.py)."""

from __future__ import annotations

import re
import string
from typing import Any

from jinja2 import pass_environment, pass_eval_context
from jinja2.filters import (
    do_batch,
    do_indent,
    do_replace,
    do_round,
    do_tojson,
    do_wordwrap,
    make_attrgetter,
    sync_do_join,
    sync_do_slice,
)
from jinja2.sandbox import MAX_RANGE, SecurityError
from jinja2.utils import generate_lorem_ipsum

MAX_OUTPUT = 20 * 1000 * 1000  # characters: the rendered template, and any one string built on the way
MAX_ITEMS = 1000 * 1000  # elements of a list or tuple built by `*` or `+`
MAX_WIDTH = 10000  # a padding, centering or indent width; a width or precision in a format
MAX_INT_BITS = 100000  # an integer built by `*` or `**` (about 30,000 digits)
MAX_JSON_INDENT = 100
MAX_PRECISION = 100  # round()
MAX_DECIMALS = 20  # formatCurrency (Intl.NumberFormat's historical maximum)
MAX_LIPSUM = 100  # paragraphs; words per paragraph: MAX_WIDTH

# A printf-style conversion: flags, width, precision (digits or `*`).
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_DIGITS = re.compile(r"\d+")


def refuse(what: str) -> SecurityError:
    return SecurityError(what)


def _over(digits: str, limit: int) -> bool:
    # Length first: int() of a few thousand digits is itself refused (and slow).
    return len(digits) > len(str(limit)) or int(digits) > limit


def check_width(value: Any, what: str = "width") -> None:
    if isinstance(value, int) and abs(value) > MAX_WIDTH:
        raise refuse(f"a {what} over {MAX_WIDTH} is not allowed in templates")
    if isinstance(value, str) and len(value) > MAX_WIDTH:
        raise refuse(f"a {what} string over {MAX_WIDTH} characters is not allowed in templates")


def check_output(size: int) -> None:
    if size > MAX_OUTPUT:
        raise refuse(f"the result would be too large (over {MAX_OUTPUT} characters)")


def _ints(args: Any) -> list[int]:
    values = args.values() if isinstance(args, dict) else args if isinstance(args, tuple | list) else (args,)
    return [value for value in values if isinstance(value, int)]


def check_printf(template: str, args: Any) -> None:
    """`template % args` and the `format` filter: widths and precisions in range."""
    for found in _PRINTF.finditer(template):
        for part in found.groups():
            if part == "*":
                for value in _ints(args):
                    check_width(value, "format width")
            elif part and _over(part, MAX_WIDTH):
                raise refuse(f"a format width or precision over {MAX_WIDTH} is not allowed in templates")


def check_str_format(template: str, args: tuple, kwargs: dict) -> None:
    """`'{:>9}'.format(...)` and `format_map`: widths in the specs (and in the
    arguments, when a spec takes its width from one) in range."""
    for _literal, _field, spec, _conversion in string.Formatter().parse(template):
        if not spec:
            continue
        if "{" in spec:
            for value in _ints(args) + _ints(kwargs):
                check_width(value, "format width")
        for digits in _DIGITS.findall(spec):
            if _over(digits, MAX_WIDTH):
                raise refuse(f"a format width or precision over {MAX_WIDTH} is not allowed in templates")


def _bits(number: int) -> int:
    return number.bit_length()


def check_binop(operator: str, left: Any, right: Any) -> None:
    """`*`, `**`, `+` and `%` on sizes the operator would build."""
    if operator == "*":
        sequence, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(sequence, str) and isinstance(count, int):
            check_output(len(sequence) * count)
        elif (
            isinstance(sequence, list | tuple)
            and isinstance(count, int)
            and len(sequence) * count > MAX_ITEMS
        ):
            raise refuse(f"the result would be too large (over {MAX_ITEMS} items)")
        elif isinstance(left, int) and isinstance(right, int) and _bits(left) + _bits(right) > MAX_INT_BITS:
            raise refuse("the number would be too large")
    elif (
        operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0
    ):
        # The result has about bits(left) * right bits.
        if right > MAX_INT_BITS or _bits(left) * right > MAX_INT_BITS:
            raise refuse("the number would be too large (the exponent is too large)")
    elif operator == "+":
        if isinstance(left, str) and isinstance(right, str):
            check_output(len(left) + len(right))
        elif (
            isinstance(left, list | tuple)
            and isinstance(right, list | tuple)
            and len(left) + len(right) > MAX_ITEMS
        ):
            raise refuse(f"the result would be too large (over {MAX_ITEMS} items)")
    elif operator == "%" and isinstance(left, str):
        check_printf(left, right)


def _replaced_size(text: str, old: str, new: str, count: Any) -> int:
    found = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _joined_size(separator: str, items: list) -> int:
    parts = sum(len(item) if isinstance(item, str) else len(str(item)) for item in items)
    return parts + len(separator) * max(0, len(items) - 1)


def check_str_method(name: str, text: str, args: tuple, kwargs: dict) -> tuple:
    """A str method called from a template (`'x'.ljust(n)`): its arguments in range.
    Returns the arguments to call it with (a join's items, read once)."""

    def arg(position: int, keyword: str, default: Any = None) -> Any:
        return args[position] if len(args) > position else kwargs.get(keyword, default)

    if name in ("ljust", "rjust", "center", "zfill"):
        check_width(arg(0, "width"))
    elif name == "expandtabs":
        size = arg(0, "tabsize", 8)
        check_width(size, "tab size")
        if isinstance(size, int):
            check_output(len(text) + text.count("\t") * size)
    elif name == "replace" and isinstance(arg(0, "old"), str) and isinstance(arg(1, "new"), str):
        check_output(_replaced_size(text, arg(0, "old"), arg(1, "new"), arg(2, "count")))
    elif name == "join" and args:
        items = list(args[0])
        check_output(_joined_size(text, items))
        return (items, *args[1:])
    return args


# --- filters and globals with their sizes checked first -----------------------------


def center(value: Any, width: int = 80) -> str:
    check_width(width)
    return str(value).center(width)


def indent(text: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    check_width(width)
    text = str(text) if not isinstance(text, str) else text
    step = width if isinstance(width, int) else len(width)
    check_output(len(text) + (text.count("\n") + 1) * max(step, 0))
    return do_indent(text, width, first, blank)


@pass_environment
def wordwrap(
    env: Any,
    text: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    check_width(width)
    text = str(text)
    if wrapstring is not None:
        lines = len(text) // max(int(width), 1) + text.count("\n") + 1
        check_output(len(text) + lines * len(str(wrapstring)))
    return do_wordwrap(env, text, width, break_long_words, wrapstring, break_on_hyphens)


def printf(value: Any, *args: Any, **kwargs: Any) -> str:
    """The `format` filter: `"%s, %s!"|format(greeting, name)`."""
    check_printf(str(value), kwargs or args)
    if args and kwargs:
        raise ValueError("format takes positional or keyword arguments, not both")
    return str(value) % (kwargs or args)


@pass_eval_context
def join(eval_ctx: Any, value: Any, d: str = "", attribute: str | int | None = None) -> str:
    items = list(value)
    if attribute is not None:
        items = list(map(make_attrgetter(eval_ctx.environment, attribute), items))
    check_output(_joined_size(str(d), items))
    return sync_do_join(eval_ctx, items, d)


@pass_eval_context
def replace(eval_ctx: Any, text: str, old: str, new: str, count: int | None = None) -> str:
    check_output(_replaced_size(str(text), str(old), str(new), count))
    return do_replace(eval_ctx, text, old, new, count)


def _check_parts(count: Any, what: str) -> None:
    if isinstance(count, int) and count > MAX_RANGE:
        raise refuse(f"a {what} over {MAX_RANGE} is too large for templates")


def batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    _check_parts(linecount, "batch size")
    return do_batch(value, linecount, fill_with)


def slice_(value: Any, slices: int, fill_with: Any = None) -> Any:
    _check_parts(slices, "slice count")
    return sync_do_slice(list(value), slices, fill_with)


def check_json_indent(indent_by: Any) -> None:
    if isinstance(indent_by, int) and indent_by > MAX_JSON_INDENT:
        raise refuse(f"a JSON indent over {MAX_JSON_INDENT} is not allowed in templates")
    if isinstance(indent_by, str) and len(indent_by) > MAX_JSON_INDENT:
        raise refuse(f"a JSON indent string over {MAX_JSON_INDENT} characters is not allowed in templates")


@pass_eval_context
def tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> Any:
    check_json_indent(indent)
    return do_tojson(eval_ctx, value, indent)


def round_(value: float, precision: int = 0, method: str = "common") -> float:
    if isinstance(precision, int) and abs(precision) > MAX_PRECISION:
        raise refuse(f"a rounding precision over {MAX_PRECISION} is not allowed in templates")
    return do_round(value, precision, method)  # type: ignore[arg-type]


def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002 - Jinja's names
    if n > MAX_LIPSUM or min > MAX_WIDTH or max > MAX_WIDTH:
        raise refuse(f"lipsum is limited to {MAX_LIPSUM} paragraphs of {MAX_WIDTH} words: that is too large")
    return generate_lorem_ipsum(n, html, min, max)


BOUNDED_FILTERS = {
    "center": center,
    "indent": indent,
    "wordwrap": wordwrap,
    "format": printf,
    "join": join,
    "replace": replace,
    "batch": batch,
    "slice": slice_,
    "tojson": tojson,
    "round": round_,
}
BOUNDED_GLOBALS = {"lipsum": lipsum}


def check_decimals(decimals: Any) -> int:
    """formatCurrency's `decimals`: a whole number from 0 to MAX_DECIMALS."""
    if isinstance(decimals, str) and len(decimals) > 3:
        raise refuse(f"formatCurrency's decimals must be from 0 to {MAX_DECIMALS}")
    number = int(decimals)
    if not 0 <= number <= MAX_DECIMALS:
        raise refuse(f"formatCurrency's decimals must be from 0 to {MAX_DECIMALS}")
    return number
