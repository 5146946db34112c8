"""HTML rendering: one Jinja environment (autoescaped) over ``reports/templates`` and the filters
the templates use to format numbers. Every page is self-contained: CSS inline, figures as
``data:`` URIs, no script or font fetched from anywhere."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).parent / "templates"


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x)) or str(x) in ("<NA>", "nan", "NaT")


def pct(x: Any, nd: int = 1) -> str:
    return "–" if _nan(x) else f"{100 * float(x):.{nd}f} %"


def ci(lo: Any, hi: Any, nd: int = 1) -> str:
    return "–" if _nan(lo) or _nan(hi) else f"{100 * float(lo):.{nd}f}–{100 * float(hi):.{nd}f} %"


def num(x: Any, nd: int = 0) -> str:
    return "–" if _nan(x) else f"{float(x):,.{nd}f}"


def json_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</`` can close the tag)."""
    from markupsafe import Markup

    text = json.dumps(data, allow_nan=False, default=str).replace("</", "<\\/").replace("<!--", "<\\!--")
    return Markup(text)  # noqa: S704 - escaped above for the script context


@cache
def environment():  # noqa: ANN201 - jinja2.Environment, imported lazily
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=pct, ci=ci, num=num, json_script=json_script)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
