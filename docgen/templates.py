"""Templates: cloudlayer's are Nunjucks, rendered here by Jinja2's sandbox (the two
share their syntax). The differences users hit are bridged: `elseif`, the `dump`
filter, iterating an object's pairs with `for k, v in obj`; cloudlayer's helpers
`formatCurrency` and `formatDateTime` are there. Anything the sandbox refuses (an
attribute like `__class__`) is an error of the request, not a silent blank.

A template is a program its sender wrote: it is evaluated only in a template worker
process (`evaluate`, run by docgen/workers.py for DocService.render_template), never
on the server's event loop, with the sizes its operators, filters and functions accept
capped (docgen/template_limits.py) and the worker bounded in time and memory."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from docgen import template_limits as limits

GALLERY = Path(__file__).with_name("gallery")
_ELSEIF = re.compile(r"{%(-?)\s*elseif\b")
_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "CAD": "CA$", "AUD": "A$"}


class TemplateProblem(ValueError):
    """The template or its data cannot make a document (a 400)."""

    # The worker that met it should be replaced rather than reused (docgen/workers.py).
    retire_worker = False


class TemplateOutOfMemory(TemplateProblem):
    retire_worker = True


@dataclass(frozen=True)
class TemplateJob:
    """What a template worker evaluates: the source and its data, or (`parse_only`)
    only whether the source parses (saved templates are checked when saved)."""

    source: str
    data: Any = None
    parse_only: bool = False


def format_currency(value: Any, currency: str = "USD", decimals: int = 2) -> str:
    """1234.5 -> "$1,234.50" (as Intl.NumberFormat en-US does)."""
    digits = limits.check_decimals(decimals)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    code = str(currency).upper()
    symbol = _CURRENCY_SYMBOLS.get(code, code + " ")
    digits = 0 if code == "JPY" else digits
    sign = "-" if number < 0 else ""
    return f"{sign}{symbol}{abs(number):,.{digits}f}"


def format_date_time(value: Any, fmt: str = "%B %d, %Y") -> str:
    """An ISO 8601 string, a date or a Unix time (s or ms) in a strftime format."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float):
        moment = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    return moment.strftime(fmt)


class _Environment(SandboxedEnvironment):
    # These build their result before any size check could see it: checked first.
    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        limits.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and callable(__obj):
            args = limits.check_str_method(getattr(__obj, "__name__", ""), owner, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template, is_map = value.__self__, value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if is_map and args and isinstance(args[0], dict) else kwargs
            limits.check_str_format(template, () if is_map else args, mapping)
            return wrapped(*args, **kwargs)

        return checked

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(f"access to {attribute!r} is not allowed in templates")


_PAIR_LOOP = re.compile(r"{%(-?)\s*for\s+(\w+)\s*,\s*(\w+)\s+in\s+([^%]+?)\s*(-?)%}")


def _nunjucks_to_jinja(source: str) -> str:
    source = _ELSEIF.sub(lambda m: "{%" + m.group(1) + " elif", source)
    # `for k, v in obj` over an object: Jinja needs obj|pairs (items for a mapping).
    return _PAIR_LOOP.sub(lambda m: f"{{%{m.group(1)} for {m.group(2)}, {m.group(3)} in ({m.group(4)})|pairs {m.group(5)}%}}", source)


def _pairs(value: Any) -> Any:
    return value.items() if isinstance(value, dict) else value


def _dump(value: Any, indent: int | str | None = None) -> str:
    limits.check_json_indent(indent)
    return json.dumps(value, indent=indent, default=str)


def _environment() -> _Environment:
    env = _Environment(autoescape=True, trim_blocks=False)
    env.filters.update(limits.BOUNDED_FILTERS)
    env.filters.update(
        {
            "dump": _dump,
            "pairs": _pairs,
            "formatCurrency": format_currency,
            "formatDateTime": format_date_time,
        }
    )
    env.globals.update(limits.BOUNDED_GLOBALS)
    env.globals.update({"formatCurrency": format_currency, "formatDateTime": format_date_time})
    return env


_ENV = _environment()


def _render(source: str, data: Any) -> str:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TemplateProblem("data must be a JSON object.")
    template = _ENV.from_string(_nunjucks_to_jinja(source))
    parts, size = [], 0
    # Piece by piece: a loop that writes without end is stopped at the limit, not
    # after it has filled memory.
    for part in template.generate(**data):
        size += len(part)
        if size > limits.MAX_OUTPUT:
            raise TemplateProblem("The rendered template is too large.")
        parts.append(part)
    return "".join(parts)


def _parse(source: str) -> None:
    try:
        _ENV.parse(_nunjucks_to_jinja(source))
    except TemplateError as exc:
        raise TemplateProblem(f"The template does not parse: {exc}") from exc


def evaluate(job: TemplateJob) -> str:
    """In a template worker: the rendered HTML ("" when only parsed); TemplateProblem
    for every way a template can fail, including the ones that would be a 500 or a
    crash anywhere else (recursion without end, memory)."""
    try:
        if job.parse_only:
            _parse(job.source)
            return ""
        return _render(job.source, job.data)
    except TemplateProblem:
        raise
    except SecurityError as exc:
        raise TemplateProblem(f"The template tried something templates may not do: {exc}") from exc
    except TemplateError as exc:
        raise TemplateProblem(f"The template could not be rendered: {exc}") from exc
    except RecursionError as exc:
        raise TemplateProblem(
            "The template recurses too deeply (a macro that calls itself without end, or nesting too deep)."
        ) from exc
    except MemoryError as exc:
        raise TemplateOutOfMemory("The template needs more memory than a template may use.") from exc
    except Exception as exc:  # noqa: BLE001 - whatever a template's own code raises is the template's error
        raise TemplateProblem(f"The template could not be rendered: {type(exc).__name__}: {exc}") from exc


def render_template(source: str, data: Any) -> str:
    """In this process, without its time and memory limits: for templates Folio itself
    wrote (benchmarks). The server evaluates requests' templates in template workers
    (DocService.render_template)."""
    return evaluate(TemplateJob(source, data))


def gallery_template(template_id: str) -> str | None:
    """A built-in template by id (docs/document-api.md lists them and their data)."""
    if not re.fullmatch(r"[a-z0-9-]{1,64}", template_id):
        return None
    path = GALLERY / f"{template_id}.njk"
    return path.read_text() if path.is_file() else None
