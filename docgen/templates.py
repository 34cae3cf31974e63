"""Templates: cloudlayer's are Nunjucks, rendered here by Jinja2's sandbox (the two
share their syntax). The differences users hit are bridged: `elseif`, the `dump`
filter, iterating an object's pairs with `for k, v in obj`; cloudlayer's helpers
`formatCurrency` and `formatDateTime` are there. Anything the sandbox refuses (an
attribute like `__class__`) is an error of the request, not a silent blank."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment, SecurityError

GALLERY = Path(__file__).with_name("gallery")
_ELSEIF = re.compile(r"{%(-?)\s*elseif\b")
_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "CAD": "CA$", "AUD": "A$"}
_MAX_OUTPUT = 20 * 1000 * 1000


class TemplateProblem(ValueError):
    """The template or its data cannot make a document (a 400)."""


def format_currency(value: Any, currency: str = "USD", decimals: int = 2) -> str:
    """1234.5 -> "$1,234.50" (as Intl.NumberFormat en-US does)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    code = str(currency).upper()
    symbol = _CURRENCY_SYMBOLS.get(code, code + " ")
    digits = 0 if code == "JPY" else int(decimals)
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
    # `'a' * 10**9` would build the string before any size check could see it.
    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        too_long = isinstance(left, str | list) and isinstance(right, int) and len(left) * right > _MAX_OUTPUT
        if operator == "*" and too_long:
            raise SecurityError("the result would be too large")
        if operator == "**" and isinstance(right, int) and right > 1000:
            raise SecurityError("the exponent is too large")
        return super().call_binop(context, operator, left, right)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(f"access to {attribute!r} is not allowed in templates")


_PAIR_LOOP = re.compile(r"{%(-?)\s*for\s+(\w+)\s*,\s*(\w+)\s+in\s+([^%]+?)\s*(-?)%}")


def _nunjucks_to_jinja(source: str) -> str:
    source = _ELSEIF.sub(lambda m: "{%" + m.group(1) + " elif", source)
    # `for k, v in obj` over an object: Jinja needs obj|pairs (items for a mapping).
    return _PAIR_LOOP.sub(lambda m: f"{{%{m.group(1)} for {m.group(2)}, {m.group(3)} in ({m.group(4)})|pairs {m.group(5)}%}}", source)


def _pairs(value: Any) -> Any:
    return value.items() if isinstance(value, dict) else value


def _environment() -> _Environment:
    env = _Environment(autoescape=True, trim_blocks=False)
    env.filters.update(
        {
            "dump": lambda value, indent=None: json.dumps(value, indent=indent, default=str),
            "pairs": _pairs,
            "formatCurrency": format_currency,
            "formatDateTime": format_date_time,
        }
    )
    env.globals.update({"formatCurrency": format_currency, "formatDateTime": format_date_time})
    return env


_ENV = _environment()


def render_template(source: str, data: Any) -> str:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TemplateProblem("data must be a JSON object.")
    try:
        html = _ENV.from_string(_nunjucks_to_jinja(source)).render(**data)
    except SecurityError as exc:
        raise TemplateProblem(f"The template tried something templates may not do: {exc}") from exc
    except TemplateError as exc:
        raise TemplateProblem(f"The template could not be rendered: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateProblem(f"The template could not be rendered: {type(exc).__name__}: {exc}") from exc
    if len(html) > _MAX_OUTPUT:
        raise TemplateProblem("The rendered template is too large.")
    return html


def check_template(source: str) -> None:
    """Refuse a template that does not parse (saved templates are checked once, up front)."""
    try:
        _ENV.parse(_nunjucks_to_jinja(source))
    except TemplateError as exc:
        raise TemplateProblem(f"The template does not parse: {exc}") from exc


def gallery_template(template_id: str) -> str | None:
    """A built-in template by id (docs/document-api.md lists them and their data)."""
    if not re.fullmatch(r"[a-z0-9-]{1,64}", template_id):
        return None
    path = GALLERY / f"{template_id}.njk"
    return path.read_text() if path.is_file() else None
