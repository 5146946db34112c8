"""Write every report of a table destination: ``vertfrac report DEST [--study KEY]``.

Layout (under ``OUT``, default ``DEST/reports``; a folder or any fsspec URL)::

    population.html              the population report
    dashboard.html               the static dashboard (links to the study reports)
    studies/<key>.html, .pdf     per-study reports (<key>: first 16 characters of the study key)

Which studies get a report: ``flagged`` (a fracture, or L1 <= 110 HU; the default), ``all``
screened studies, ``none``, or just the one named by ``--study``.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pandas as pd

from reports.dashboard import dashboard_html
from reports.load import Tables, load_tables
from reports.population import population_html
from reports.stats import PopulationStats, compute, current_vertebrae
from reports.study import resolve_study, study_html, study_pdf, study_report
from vertfrac_core.dicom.index import filesystem
from vertfrac_core.safepath import key_component, safe_join

log = logging.getLogger(__name__)


class StudySelection(StrEnum):
    FLAGGED = "flagged"
    ALL = "all"
    NONE = "none"


@dataclass
class ReportSummary:
    out: str
    population: str | None = None
    dashboard: str | None = None
    studies: list[str] = field(default_factory=list)  # html paths

    def describe(self) -> str:
        lines = []
        if self.population:
            lines.append(f"population report: {self.population}")
        if self.dashboard:
            lines.append(f"dashboard: {self.dashboard}")
        lines.append(f"study reports: {len(self.studies)} (HTML and PDF) under {posixpath.join(self.out, 'studies')}")
        return "\n".join(lines)


def study_file_stem(study_key: str) -> str:
    """The file name (without suffix) of a study's report: 16 characters of its key, which must
    be a key the pipeline made (hex), so a tampered table cannot choose where a file goes."""
    return key_component(str(study_key)[:16], "study key")


def selected_studies(stats: PopulationStats, which: StudySelection | str) -> pd.DataFrame:
    st = stats.studies
    which = StudySelection(which)
    if which is StudySelection.NONE:
        return st.iloc[0:0]
    if which is StudySelection.ALL:
        return st
    ok = st["status"].eq("ok")
    flagged = ok & (st["max_grade"].fillna(0).astype(int).ge(1) | st["density_flag"].eq("likely_osteoporosis"))
    return st[flagged]


def _write(fs: Any, path: str, data: bytes) -> str:
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.pipe_file(path, data)
    return path


def write_study(tables: Tables, row: pd.Series, fs: Any, root: str, *, dest: str,
                storage_options: dict[str, Any] | None = None) -> str:
    rep = study_report(tables, row, dest=dest, storage_options=storage_options)
    stem = study_file_stem(rep.study_key)
    _write(fs, safe_join(root, "studies", stem + ".pdf"), study_pdf(rep))
    return _write(fs, safe_join(root, "studies", stem + ".html"), study_html(rep).encode())


def write_reports(dest: str, out: str | None = None, *, studies: StudySelection | str = StudySelection.FLAGGED,
                  study: str | None = None, storage_options: dict[str, Any] | None = None) -> ReportSummary:
    """Build the reports of the tables under ``dest`` into ``out`` (see the module docstring).

    With ``study`` (a key or a prefix of at least 8 characters) only that study's report is
    written; otherwise the population report, the dashboard and the selected study reports.
    """
    out = out or posixpath.join(dest.rstrip("/"), "reports")
    tables = load_tables(dest, storage_options)
    stats = compute(tables)
    fs, root = filesystem(out, storage_options)
    root = root.rstrip("/")
    summary = ReportSummary(out=out)
    if study is not None:
        row = resolve_study(stats.studies, study)
        summary.studies.append(write_study(tables, row, fs, root, dest=dest, storage_options=storage_options))
        return summary
    links = {}
    for _, row in selected_studies(stats, studies).iterrows():
        summary.studies.append(write_study(tables, row, fs, root, dest=dest, storage_options=storage_options))
        links[row["study_key"]] = f"studies/{study_file_stem(row['study_key'])}.html"
    summary.population = _write(fs, posixpath.join(root, "population.html"), population_html(stats).encode())
    verts = current_vertebrae(tables, stats.studies)
    summary.dashboard = _write(fs, posixpath.join(root, "dashboard.html"),
                               dashboard_html(stats, verts, links).encode())
    log.info("reports written under %s: %d study reports", out, len(summary.studies))
    return summary
