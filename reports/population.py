"""The population report: one self-contained HTML page from :class:`reports.stats.PopulationStats`.

Every number on the page comes from :mod:`reports.stats`; the template only formats. The same
numbers are embedded as JSON (``<script type="application/json" id="vertfrac-stats">``) for
anyone who wants to read them by machine.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from reports import figures
from reports.html import render
from reports.privacy import check_text
from reports.stats import SEX_LABELS, PopulationStats
from vertfrac_core.detect.levels import CONFIDENT_LEVEL


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return df.to_dict("records")


def _first(df: pd.DataFrame) -> dict[str, Any]:
    return df.iloc[0].to_dict() if len(df) else {"prevalence": None, "ci_low": None, "ci_high": None}


def generator_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vertfrac")
    except PackageNotFoundError:
        return "dev"


def figure_uris(stats: PopulationStats) -> dict[str, str]:
    """The report's figures as data URIs."""
    pa, pm = stats.prevalence_any, stats.prevalence_moderate
    pngs = {
        "funnel": figures.funnel_png(stats.funnel),
        "prevalence_any": figures.prevalence_png(pa["age_band_sex"], pa["age_band"], "Any fracture (grade ≥ 1)"),
        "prevalence_moderate": figures.prevalence_png(pm["age_band_sex"], pm["age_band"], "Grade ≥ 2"),
        "levels": figures.levels_png(stats.levels),
        "l1": figures.l1_png(stats.studies),
        "runs": figures.runs_png(stats.runs),
    }
    return {k: figures.data_uri(v) for k, v in pngs.items()}


def population_html(stats: PopulationStats, *, generated_at: dt.datetime | None = None) -> str:
    """The report as one HTML string (figures inline)."""
    when = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    html = render(
        "population.html.j2", generated_at=when, generator_version=generator_version(),
        f=stats.funnel, model_versions=stats.model_versions, figs=figure_uris(stats),
        any_all=_first(stats.prevalence_any["all"]), mod_all=_first(stats.prevalence_moderate["all"]),
        osteo_all=_first(stats.osteoporosis["all"]),
        prev_any={k: _records(v) for k, v in stats.prevalence_any.items()},
        prev_mod={k: _records(v) for k, v in stats.prevalence_moderate.items()},
        osteo={k: _records(v) for k, v in stats.osteoporosis.items()},
        levels=_records(stats.levels), l1=_records(stats.l1), quality=_records(stats.quality),
        batches=stats.batches, runs=_records(stats.runs.assign(started=stats.runs["started"].astype(str)))
        if len(stats.runs) else [], sex_labels=SEX_LABELS, stats_json=stats.to_dict(),
        confident_level=CONFIDENT_LEVEL,
    )
    return check_text(html, "the population report")
