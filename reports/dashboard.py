"""The dashboard: one static, self-contained HTML page regenerated after each nightly run.

Why static: epidemiologists behind hospital firewalls can open a file from a share or an
intranet web folder with the browser they already have; nothing to install, no server process
to keep alive or get approved, no port to open, and it keeps working when the screening host is
down. The page filters a list of studies (pseudonymous keys, age bands, results) in the browser
and recomputes the prevalence of the selection with a Wilson interval; deeper questions go to
DuckDB over the same Parquet tables (``docs/dashboards.md``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from reports import figures
from reports.html import render
from reports.population import _first, generator_version
from reports.privacy import check_text
from reports.stats import BAND_ORDER, PopulationStats
from vertfrac_core.detect.levels import level_label


def study_records(stats: PopulationStats, vertebrae: pd.DataFrame, reports: dict[str, str]) -> list[dict[str, Any]]:
    """The dashboard's list of studies; ``reports`` maps study keys to report links."""
    fractured: dict[tuple, list[str]] = {}
    if not vertebrae.empty:
        f = vertebrae[vertebrae["grade"] >= 1]
        for key, g in f.groupby(["series_key", "content_hash", "model_version"]):
            fractured[key] = [f"{level_label(v)} G{int(v['grade'])}" for _, v in g.iterrows()]
    out = []
    for r in stats.studies.to_dict("records"):
        key = (r["series_key"], r["content_hash"], r["model_version"])
        out.append({
            "key": r["study_key"][:12], "age_band": r["age_band"], "sex": r["sex"], "status": r["status"],
            "reason": None if r["status"] == "ok" else r["error_code"],
            "max_grade": None if pd.isna(r["max_grade"]) else int(r["max_grade"]),
            "levels_fractured": ", ".join(fractured.get(key, [])),
            "l1_hu": None if pd.isna(r["l1_hu"]) else round(float(r["l1_hu"]), 1),
            "density_flag": r["density_flag"] if r["status"] == "ok" else None,
            "screened": pd.Timestamp(r["processed_at"]).strftime("%Y-%m-%d"),
            "report": reports.get(r["study_key"]),
        })
    return out


def dashboard_html(stats: PopulationStats, vertebrae: pd.DataFrame, reports: dict[str, str] | None = None,
                   *, generated_at: dt.datetime | None = None) -> str:
    when = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    pa = stats.prevalence_any
    figs = {"runs": figures.data_uri(figures.runs_png(stats.runs)),
            "prevalence_any": figures.data_uri(figures.prevalence_png(pa["age_band_sex"], pa["age_band"],
                                                                      "Any fracture (grade ≥ 1) by age band"))}
    last = None
    if len(stats.runs):
        last = stats.runs.iloc[-1].to_dict()
        last["started"] = pd.Timestamp(last["started"]).strftime("%Y-%m-%d %H:%M")
    html = render("dashboard.html.j2", generated_at=when, generator_version=generator_version(),
                  f=stats.funnel, any_all=_first(pa["all"]), mod_all=_first(stats.prevalence_moderate["all"]),
                  osteo_all=_first(stats.osteoporosis["all"]), last_run=last, batches=stats.batches,
                  figs=figs, bands=BAND_ORDER, studies_json=study_records(stats, vertebrae, reports or {}))
    return check_text(html, "the dashboard")
