"""Strategies for the web listener's inputs, shared by the property and server layers."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from tests.fuzz.strategies import json_values, text

OPTION_NAMES = (
    "format", "width", "height", "landscape", "margin", "scale", "pageRanges", "preferCSSPageSize",
    "printBackground", "headerTemplate", "footerTemplate", "imageType", "quality", "transparent", "trim",
    "viewPort", "waitUntil", "waitForSelector", "cookies", "authentication", "autoScroll", "timeout", "delay",
)  # fmt: skip
likely_values = st.one_of(
    st.sampled_from(["a4", "letter", "10px", "1in", "2 cm", "1-5, 8", "5-1", "0", "png", "jpeg", "load", "networkidle0"]),
    st.dictionaries(st.sampled_from(["top", "bottom", "left", "right", "width", "height", "deviceScaleFactor", "method", "selector", "template", "margin"]), json_values(6), max_size=4),
)  # fmt: skip
document_bodies = st.dictionaries(
    st.one_of(st.sampled_from(OPTION_NAMES), text), st.one_of(likely_values, json_values(8)), max_size=8
)


# Cheap templates: every construct users write, over generated names and values; a
# stall or a recursion is one of the known findings (issue 13, items 5 and 6) and has
# its own regression test, so sizes here stay small.
_EXPRESSIONS = st.one_of(
    st.sampled_from(
        [
            "name", "items", "n", "missing", "missing.attr", "items[0]", "items|length", "name|upper",
            "items|join(',')", "n * 2", "n ** 3", "'ab' * n", "n / 0", "n // 0", "obj|dump", "obj|pairs",
            "formatCurrency(n)", "formatCurrency(n, 'EUR', 3)", "formatCurrency(name)", "formatDateTime(n)",
            "formatDateTime(name, '%Y')", "n|formatCurrency('JPY')", "name.__class__", "().__class__.__base__",
            "cycler.__init__", "lipsum()", "range(n)|list|length", "obj.keys()|list", "n is divisibleby 3",
        ]
    ),
    st.integers(-(10**6), 10**6).map(str),
    text.map(lambda t: json.dumps(t)),
)  # fmt: skip


@st.composite
def templates(draw: st.DrawFn) -> str:
    pieces = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.integers(0, 6))
        expr = draw(_EXPRESSIONS)
        if kind == 0:
            pieces.append(f"{{{{ {expr} }}}}")
        elif kind == 1:
            pieces.append(f"{{% if {expr} %}}a{{% elseif {draw(_EXPRESSIONS)} %}}b{{% else %}}c{{% endif %}}")
        elif kind == 2:
            pieces.append(f"{{% for k, v in {expr} %}}{{{{ k }}}}={{{{ v }}}}{{% endfor %}}")
        elif kind == 3:
            pieces.append(f"{{% for x in {expr} %}}{{{{ loop.index }}}}{{% endfor %}}")
        elif kind == 4:
            pieces.append(f"{{% set y = {expr} %}}{{{{ y }}}}")
        elif kind == 5:
            pieces.append(draw(st.sampled_from(["{{", "{%", "{% endfor %}", "{# x", "}}", "{% raw %}", "<p>&amp;</p>"])))
        else:
            pieces.append(draw(text))
    return "".join(pieces)


