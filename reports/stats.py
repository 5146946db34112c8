"""Population statistics over the screening tables: the numbers every report and dashboard shows.

Pure functions of pandas frames (:class:`reports.load.Tables`), each tested against hand counts
and the phantom generator's truth. Definitions:

* **current result of a study**: its ``scans`` row with the latest ``processed_at`` (a new model
  version or a changed series gives a newer row; older rows stay in the tables for audit);
* **analysed**: current status ``ok``; prevalences and densities are over analysed studies only;
* **fracture**: ``max_grade >= 1`` (Genant grade 1-3); **moderate or severe**: ``max_grade >= 2``;
* **age band**: ten-year bands of the age at the study (``series_index.age_years`` of the
  selected series), ``<40`` and ``90+`` at the ends; reports never show exact ages;
* **density flags** (Pickhardt et al. 2013, L1 trabecular HU): <= 110 likely osteoporosis,
  110-160 indeterminate, > 160 unlikely;
* **confidence intervals**: Wilson score intervals at 95 % (:func:`wilson`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reports.load import Tables
from vertfrac_core.anatomy import ALL_LEVELS

Z95 = 1.959963984540054
HU_LIKELY, HU_UNLIKELY = 110.0, 160.0
AGE_BANDS: tuple[tuple[float, float, str], ...] = (
    (0, 40, "<40"), (40, 50, "40–49"), (50, 60, "50–59"), (60, 70, "60–69"), (70, 80, "70–79"),
    (80, 90, "80–89"), (90, math.inf, "90+"),
)
BAND_ORDER = [b[2] for b in AGE_BANDS]
SEX_LABELS = {"F": "women", "M": "men"}


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float, float]:
    """(proportion, lower, upper) of ``k`` events in ``n`` trials: the Wilson score interval.

    ``n == 0`` gives NaNs (no estimate), never a division error.
    """
    if k < 0 or k > n:
        raise ValueError(f"wilson: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (math.nan, math.nan, math.nan)
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (p, lo, hi)


def age_band(age: float | None) -> str | None:
    """The ten-year band of ``age`` (years), None when unknown."""
    if age is None or not np.isfinite(age):
        return None
    return next(label for lo, hi, label in AGE_BANDS if lo <= age < hi)


def _total_s(timings: Any) -> float:
    if timings is None:
        return math.nan
    items = timings.items() if isinstance(timings, dict) else timings
    return next((float(v) for k, v in items if k == "total"), math.nan)


STUDY_COLUMNS = ["study_key", "series_key", "content_hash", "model_version", "status",
                 "failed_stage", "error_code", "max_grade", "fractured", "moderate_or_severe",
                 "l1_hu", "l1_hu_level", "density_flag", "contrast", "image_path", "n_vertebrae",
                 "levels", "run_id", "processed_at", "total_s", "age_years", "sex", "age_band", "slice_mm"]


def _slice_mm(idx: pd.DataFrame, scans: pd.DataFrame) -> pd.Series:
    """The head-feet resolution (mm) of the series each result analysed (``analyzed_series_key``,
    else ``series_key``; ``idx``: the series index, one row per series key): the larger of its
    slice thickness and slice spacing (a gap between slices is as blind as a thick slice); NaN
    where the index has neither."""
    if idx.empty or not {"slice_thickness_mm", "slice_spacing_mm"} <= set(idx.columns):
        return pd.Series(float("nan"), index=scans.index)
    mm = pd.concat([pd.to_numeric(idx["slice_thickness_mm"], errors="coerce"),
                    pd.to_numeric(idx["slice_spacing_mm"], errors="coerce")], axis=1).max(axis=1)
    analysed = scans["analyzed_series_key"] if "analyzed_series_key" in scans else scans["series_key"]
    return analysed.fillna(scans["series_key"]).map(mm).astype(float)


def studies(tables: Tables) -> pd.DataFrame:
    """One row per study: its current result joined with age, sex and band of its series."""
    scans = tables.scans
    if scans.empty:
        return pd.DataFrame(columns=STUDY_COLUMNS)
    s = scans.copy()
    s["study_key"] = s["study_key"].fillna(s["series_key"])
    s["_ok"] = s["status"].eq("ok")
    s = s.sort_values(["processed_at", "_ok"], kind="stable").groupby("study_key").tail(1)
    s["total_s"] = s["timings_s"].map(_total_s)
    idx = tables.series_index
    per_series = (idx.drop_duplicates("series_key", keep="last").set_index("series_key")
                  if not idx.empty else pd.DataFrame(columns=["age_years", "sex"]))
    s = s.join(per_series[["age_years", "sex"]], on="series_key")
    s["slice_mm"] = _slice_mm(per_series, s)
    s["age_band"] = s["age_years"].map(lambda a: age_band(None if pd.isna(a) else float(a)))
    ok = s["status"].eq("ok")
    grade = pd.to_numeric(s["max_grade"], errors="coerce")
    s["max_grade"] = grade.where(ok).astype("Int64")
    s["fractured"] = (grade >= 1).where(ok).astype("boolean")
    s["moderate_or_severe"] = (grade >= 2).where(ok).astype("boolean")
    s["sex"] = s["sex"].where(s["sex"].isin(["F", "M"]))
    return s[STUDY_COLUMNS].sort_values("study_key").reset_index(drop=True)


def current_vertebrae(tables: Tables, study_rows: pd.DataFrame) -> pd.DataFrame:
    """The ``vertebrae`` rows of the current, analysed result of each study."""
    ok = study_rows[study_rows["status"].eq("ok")]
    key = ["series_key", "content_hash", "model_version"]
    if ok.empty or tables.vertebrae.empty:
        return tables.vertebrae.iloc[0:0].copy()
    return tables.vertebrae.merge(ok[key], on=key, how="inner")


@dataclass(frozen=True)
class Funnel:
    """From the archive to results: each stage a count, each loss a reason."""

    archived_objects: int | None  # files listed under the source at the last run
    unusable_files: dict[str, int]  # files without a usable image header, by reason
    series: int  # image series found
    studies: int  # studies with at least one series
    selected: int  # studies with a series fit for the spine
    not_selected: dict[str, int]  # studies without a usable series, by the reason of their best series
    screened: int  # studies with a result
    analysed: int  # status ok
    failed: dict[str, int]  # by "stage: error code"
    skipped: dict[str, int]  # by error code
    pending: int  # selected but not screened yet

    def stages(self) -> list[tuple[str, int]]:
        out = [("archived files", self.archived_objects)] if self.archived_objects is not None else []
        return out + [("series indexed", self.series), ("studies", self.studies),
                      ("studies selected", self.selected), ("screened", self.screened),
                      ("analysed", self.analysed), ("failed", sum(self.failed.values())),
                      ("skipped", sum(self.skipped.values()))]


def _counts(values: pd.Series) -> dict[str, int]:
    vc = values.fillna("unknown").astype(str).value_counts()
    return {str(k): int(v) for k, v in vc.items()}


def funnel(tables: Tables, study_rows: pd.DataFrame) -> Funnel:
    idx = tables.series_index.drop_duplicates(["series_key", "content_hash"], keep="last")
    files = idx[idx["study_key"].isna()]
    series = idx[idx["study_key"].notna()]
    by_study = series.groupby("study_key")
    selected_studies = set(series.loc[series["selected"].astype(bool), "study_key"])
    unselected = series[~series["study_key"].isin(selected_studies)]
    best = unselected.sort_values("rank", na_position="last").groupby("study_key").head(1)
    st = study_rows
    failed = st[st["status"].eq("failed")]
    fail_reason = failed["failed_stage"].fillna("-").astype(str) + ": " + failed["error_code"].fillna("unknown").astype(str)
    return Funnel(
        archived_objects=tables.archived_objects,
        unusable_files=_counts(files["reason"]),
        series=len(series), studies=by_study.ngroups, selected=len(selected_studies),
        not_selected=_counts(best["reason"]),
        screened=len(st), analysed=int(st["status"].eq("ok").sum()),
        failed=_counts(fail_reason), skipped=_counts(st.loc[st["status"].eq("skipped"), "error_code"]),
        pending=len(selected_studies - set(st["study_key"])),
    )


def _ordered(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    keys = []
    for col in by:
        order = BAND_ORDER if col == "age_band" else sorted(df[col].dropna().unique())
        keys.append(df[col].map({v: i for i, v in enumerate(order)}))
    if not keys:
        return df
    tmp = df.assign(**{f"_k{i}": k for i, k in enumerate(keys)})
    return tmp.sort_values([f"_k{i}" for i in range(len(keys))]).drop(columns=[f"_k{i}" for i in range(len(keys))])


def prevalence(study_rows: pd.DataFrame, by: Sequence[str] = (), *, min_grade: int = 1) -> pd.DataFrame:
    """Share of analysed studies with ``max_grade >= min_grade``, by ``by`` columns, with Wilson CIs.

    Columns: ``*by, n, cases, prevalence, ci_low, ci_high``. Studies with an unknown value of a
    ``by`` column are left out of that breakdown (they still count in the overall row).
    """
    ok = study_rows[study_rows["status"].eq("ok")].dropna(subset=list(by))
    ok = ok.assign(_case=pd.to_numeric(ok["max_grade"]).ge(min_grade))
    groups = ok.groupby(list(by), observed=True, sort=False) if by else [((), ok)]
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        n, k = len(g), int(g["_case"].sum())
        p, lo, hi = wilson(k, n)
        rows.append({**dict(zip(by, key, strict=True)), "n": n, "cases": k, "prevalence": p,
                     "ci_low": lo, "ci_high": hi})
    out = pd.DataFrame(rows, columns=[*by, "n", "cases", "prevalence", "ci_low", "ci_high"])
    return _ordered(out, by).reset_index(drop=True)


def levels_affected(vertebrae: pd.DataFrame) -> pd.DataFrame:
    """Per level (cranial to caudal): vertebrae seen, fractured (grade >= 1), grade >= 2, and types;
    ``uncertain``: how many of those seen carry that level with a confidence below
    ``CONFIDENT_LEVEL`` (the level models disagree, or the anatomical context overruled them:
    such a vertebra may belong to another row)."""
    from vertfrac_core.detect.levels import CONFIDENT_LEVEL

    cols = ["level", "seen", "fractured", "moderate_or_severe", "share", "wedge", "biconcave", "crush",
            "uncertain"]
    if vertebrae.empty:
        return pd.DataFrame(columns=cols)
    conf = vertebrae["level_confidence"] if "level_confidence" in vertebrae else pd.Series(1.0, vertebrae.index)
    v = vertebrae.assign(_f=vertebrae["grade"].ge(1), _m=vertebrae["grade"].ge(2),
                         _u=conf.astype(float).lt(CONFIDENT_LEVEL))
    rows = []
    for level, g in v.groupby("level"):
        f = g[g["_f"]]
        rows.append({"level": level, "seen": len(g), "fractured": int(g["_f"].sum()),
                     "moderate_or_severe": int(g["_m"].sum()), "share": float(g["_f"].mean()),
                     **{t: int(f["type"].eq(t).sum()) for t in ("wedge", "biconcave", "crush")},
                     "uncertain": int(g["_u"].sum())})
    out = pd.DataFrame(rows, columns=cols)
    rank = {lv: i for i, lv in enumerate(ALL_LEVELS)}
    return out.sort_values("level", key=lambda s: s.map(lambda x: rank.get(x, 99))).reset_index(drop=True)


def l1_by_age_sex(study_rows: pd.DataFrame) -> pd.DataFrame:
    """L1 attenuation of analysed studies by age band and sex: quartiles and the share per band."""
    cols = ["age_band", "sex", "n", "median_hu", "q1_hu", "q3_hu", "share_le_110", "share_110_160",
            "share_gt_160"]
    ok = study_rows[study_rows["status"].eq("ok")].dropna(subset=["l1_hu", "age_band", "sex"])
    rows = []
    for (band, sex), g in ok.groupby(["age_band", "sex"]):
        hu = g["l1_hu"].astype(float)
        rows.append({"age_band": band, "sex": sex, "n": len(g), "median_hu": float(hu.median()),
                     "q1_hu": float(hu.quantile(0.25)), "q3_hu": float(hu.quantile(0.75)),
                     "share_le_110": float((hu <= HU_LIKELY).mean()),
                     "share_110_160": float(((hu > HU_LIKELY) & (hu <= HU_UNLIKELY)).mean()),
                     "share_gt_160": float((hu > HU_UNLIKELY).mean())})
    return _ordered(pd.DataFrame(rows, columns=cols), ["age_band", "sex"]).reset_index(drop=True)


def osteoporosis_share(study_rows: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Share of analysed studies with a known L1 value flagged ``likely_osteoporosis`` (<= 110 HU)."""
    known = study_rows[study_rows["status"].eq("ok") & study_rows["l1_hu"].notna()]
    flagged = known.assign(max_grade=known["density_flag"].eq("likely_osteoporosis").astype(int))
    return prevalence(flagged, by, min_grade=1)


def quality(qc: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Per table and expectation: checks run and failed, with the last failing observation;
    and the batch counts ``{"published": .., "blocked": ..}``."""
    cols = ["table", "expectation", "column", "checks", "failed", "last_failure"]
    if qc.empty:
        return pd.DataFrame(columns=cols), {"published": 0, "blocked": 0}
    rows = []
    for (table, exp, col), g in qc.groupby(["table", "expectation", qc["column"].fillna("")], sort=True):
        bad = g[~g["success"].astype(bool)].sort_values("checked_at")
        rows.append({"table": table, "expectation": exp, "column": col, "checks": len(g),
                     "failed": len(bad),
                     "last_failure": None if bad.empty else str(bad["observed_value"].iloc[-1])[:80]})
    per_batch = qc.groupby("batch_id")["published"].all()
    return (pd.DataFrame(rows, columns=cols),
            {"published": int(per_batch.sum()), "blocked": int((~per_batch).sum())})


def runs(tables: Tables) -> pd.DataFrame:
    """Per nightly run (``run_id``), oldest first: when, how many scans, outcomes, time per scan,
    and batches blocked by a quality gate."""
    cols = ["run", "started", "scans", "ok", "failed", "skipped", "failure_rate",
            "median_s_per_scan", "p90_s_per_scan", "batches_blocked"]
    sc = tables.scans
    if sc.empty:
        return pd.DataFrame(columns=cols)
    blocked = (tables.qc.groupby(["run_id", "batch_id"])["published"].all().eq(False)
               .groupby(level=0).sum() if not tables.qc.empty else pd.Series(dtype=int))
    rows = []
    for run_id, g in sc.groupby("run_id"):
        t = g["timings_s"].map(_total_s).dropna()
        st = g["status"].value_counts()
        n = len(g)
        rows.append({"run": str(run_id)[:8], "started": g["processed_at"].min(), "scans": n,
                     "ok": int(st.get("ok", 0)), "failed": int(st.get("failed", 0)),
                     "skipped": int(st.get("skipped", 0)),
                     "failure_rate": int(st.get("failed", 0)) / n if n else math.nan,
                     "median_s_per_scan": float(t.median()) if len(t) else math.nan,
                     "p90_s_per_scan": float(t.quantile(0.9)) if len(t) else math.nan,
                     "batches_blocked": int(blocked.get(run_id, 0))})
    return pd.DataFrame(rows, columns=cols).sort_values("started").reset_index(drop=True)


@dataclass(frozen=True)
class PopulationStats:
    """Everything the population report and the dashboard show, computed once."""

    studies: pd.DataFrame
    funnel: Funnel
    prevalence_any: dict[str, pd.DataFrame] = field(default_factory=dict)  # "all", "sex", "age_band", "age_band_sex"
    prevalence_moderate: dict[str, pd.DataFrame] = field(default_factory=dict)
    levels: pd.DataFrame = field(default_factory=pd.DataFrame)
    l1: pd.DataFrame = field(default_factory=pd.DataFrame)
    osteoporosis: dict[str, pd.DataFrame] = field(default_factory=dict)  # "all", "sex", "age_band"
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)
    batches: dict[str, int] = field(default_factory=dict)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    model_versions: dict[str, int] = field(default_factory=dict)  # current results per model

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (NaN as None), embedded in the reports for machines to read."""
        def rec(df: pd.DataFrame) -> list[dict[str, Any]]:
            return [{k: _plain(v) for k, v in r.items()} for r in df.to_dict("records")]

        f = self.funnel
        return {
            "funnel": {**{k: v for k, v in f.__dict__.items()}},
            "prevalence_any": {k: rec(v) for k, v in self.prevalence_any.items()},
            "prevalence_moderate_or_severe": {k: rec(v) for k, v in self.prevalence_moderate.items()},
            "levels": rec(self.levels), "l1_by_age_sex": rec(self.l1),
            "osteoporosis_likely": {k: rec(v) for k, v in self.osteoporosis.items()},
            "quality": rec(self.quality), "batches": self.batches, "runs": rec(self.runs),
            "model_versions": self.model_versions,
        }


def _plain(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


BREAKDOWNS = {"all": (), "sex": ("sex",), "age_band": ("age_band",), "age_band_sex": ("age_band", "sex")}


def compute(tables: Tables) -> PopulationStats:
    """All population statistics of ``tables``."""
    st = studies(tables)
    quality_table, batches = quality(tables.qc)
    ok = st[st["status"].eq("ok")]
    return PopulationStats(
        studies=st, funnel=funnel(tables, st),
        prevalence_any={k: prevalence(st, by) for k, by in BREAKDOWNS.items()},
        prevalence_moderate={k: prevalence(st, by, min_grade=2) for k, by in BREAKDOWNS.items()},
        levels=levels_affected(current_vertebrae(tables, st)), l1=l1_by_age_sex(st),
        osteoporosis={k: osteoporosis_share(st, by) for k, by in list(BREAKDOWNS.items())[:3]},
        quality=quality_table, batches=batches, runs=runs(tables),
        model_versions={str(k): int(v) for k, v in ok["model_version"].value_counts().items()},
    )
