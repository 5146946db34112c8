"""The statistics module against hand counts of tables built by rule (``truth_tables.py``)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reports.load import Tables
from reports.stats import age_band, compute, prevalence, studies, wilson
from vertfrac_core.tables import SCHEMAS


@pytest.mark.parametrize(("k", "n", "lo", "hi"), [
    (5, 10, 0.236593, 0.763407),  # symmetric
    (0, 10, 0.0, 0.277533),
    (10, 10, 0.722467, 1.0),
    (1, 40, 0.004427, 0.128814),
])
def test_wilson_interval(k: int, n: int, lo: float, hi: float) -> None:
    p, a, b = wilson(k, n)
    assert p == pytest.approx(k / n)
    assert (a, b) == (pytest.approx(lo, abs=1e-5), pytest.approx(hi, abs=1e-5))


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 3), (7, 19), (81, 263), (150, 200), (999, 1000)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    _, lo, hi = wilson(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-9) and hi == pytest.approx(ci.high, abs=1e-9)


def test_wilson_edge_cases() -> None:
    assert all(math.isnan(x) for x in wilson(0, 0))
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson(3, 2)


def test_age_bands() -> None:
    assert [age_band(a) for a in (39.9, 40, 49.99, 50, 89, 90, 103)] == [
        "<40", "40–49", "40–49", "50–59", "80–89", "90+", "90+"]
    assert age_band(None) is None and age_band(float("nan")) is None


def test_funnel_counts_follow_the_construction(truth_stats, truth_dest) -> None:  # noqa: ANN001
    _, specs = truth_dest
    n = len(specs)
    f = truth_stats.funnel
    assert f.studies == f.selected == f.screened == n
    assert f.unusable_files == {"not_dicom": len(range(0, n, 25))}
    assert f.series == n + len(range(0, n, 3))  # one selected axial series + a scout every 3rd
    assert f.failed == {"localize: no_spine": len(range(39, n, 40))}
    skipped = [i for i in range(49, n, 50) if i % 40 != 39]
    assert f.skipped == {"analyzer_unavailable": len(skipped)}
    assert f.analysed == n - sum(f.failed.values()) - len(skipped)
    assert f.pending == 0 and f.not_selected == {}
    assert [s for s, _ in f.stages()][:3] == ["series indexed", "studies", "studies selected"]


def test_prevalence_breakdowns_add_up(truth_stats) -> None:  # noqa: ANN001
    pa, pm = truth_stats.prevalence_any, truth_stats.prevalence_moderate
    total = pa["all"].iloc[0]
    assert total["n"] == truth_stats.funnel.analysed
    for key in ("sex", "age_band", "age_band_sex"):
        assert pa[key]["n"].sum() == total["n"] and pa[key]["cases"].sum() == total["cases"]
        assert (pm[key]["cases"] <= pa[key]["cases"]).all()
        assert ((pa[key]["ci_low"] <= pa[key]["prevalence"]) & (pa[key]["prevalence"] <= pa[key]["ci_high"])).all()
    assert list(pa["age_band"]["age_band"]) == sorted(pa["age_band"]["age_band"], key=["40–49", "50–59",
                                                      "60–69", "70–79", "80–89", "90+"].index)


def test_levels_and_density_against_the_specs(truth_stats, truth_dest) -> None:  # noqa: ANN001
    _, specs = truth_dest
    st = truth_stats.studies.set_index("study_key")
    ok_seeds = {s.seed for i, s in enumerate(specs) if i % 40 != 39 and i % 50 != 49}
    frac = pd.Series([f.level for s in specs if s.seed in ok_seeds for f in s.fractures]).value_counts()
    levels = truth_stats.levels.set_index("level")
    for level, count in frac.items():
        assert levels.loc[level, "fractured"] == count
    assert levels["fractured"].sum() == frac.sum()
    assert list(levels.index[:3]) == ["C7", "T1", "T2"]  # anatomical order
    flagged = sum(s.l1_hu <= 110 for s in specs if s.seed in ok_seeds)
    assert truth_stats.osteoporosis["all"].iloc[0]["cases"] == flagged
    l1 = truth_stats.l1
    assert l1["n"].sum() == len(ok_seeds)
    assert ((l1["share_le_110"] + l1["share_110_160"] + l1["share_gt_160"]).round(9) == 1).all()
    assert st["l1_hu"].notna().sum() == len(ok_seeds)


def test_quality_and_runs(truth_stats) -> None:  # noqa: ANN001
    q = truth_stats.quality.set_index("expectation")
    assert q.loc["expect_failure_rate", "failed"] == 1 and q.loc["expect_failure_rate", "last_failure"] == "0.8"
    assert truth_stats.batches == {"published": 2, "blocked": 1}
    runs = truth_stats.runs
    assert list(runs["scans"]) == [100, 100] and list(runs["batches_blocked"]) == [0, 1]
    assert runs["started"].is_monotonic_increasing
    assert (runs["ok"] + runs["failed"] + runs["skipped"] == runs["scans"]).all()
    assert runs["median_s_per_scan"].between(4, 11).all()


def test_latest_result_per_study_wins(truth_tables) -> None:  # noqa: ANN001
    scans = truth_tables.scans
    newer = scans.iloc[[0]].assign(model_version="vf-new", status="failed", max_grade=None,
                                   processed_at=scans["processed_at"].max() + pd.Timedelta(days=1))
    t = Tables(**{**truth_tables.__dict__, "scans": pd.concat([scans, newer], ignore_index=True)})
    st = studies(t).set_index("study_key")
    assert st.loc[newer["study_key"].iloc[0], "model_version"] == "vf-new"
    assert len(st) == scans["study_key"].nunique()


def test_empty_and_skipped_only_tables_give_empty_statistics() -> None:
    empty = {k: s.empty_table().to_pandas() for k, s in SCHEMAS.items()}
    stats = compute(Tables(**empty, archived_objects=None))
    assert stats.funnel.screened == 0 and stats.prevalence_any["all"]["n"].tolist() == [0]
    assert prevalence(stats.studies, ("sex",)).empty
    stats.to_dict()


def test_pages_render_when_nothing_was_analysed(truth_tables) -> None:  # noqa: ANN001
    """The demo without trained weights: every study skipped; pages still render and say so."""
    from reports.dashboard import dashboard_html
    from reports.population import population_html

    scans = truth_tables.scans.assign(status="skipped", error_code="analyzer_unavailable",
                                      max_grade=None, fractured=None, l1_hu=None, density_flag=None)
    t = Tables(**{**truth_tables.__dict__, "scans": scans, "vertebrae": truth_tables.vertebrae.iloc[0:0]})
    stats = compute(t)
    html = population_html(stats)
    assert "No study has been analysed yet" in html and "analyzer_unavailable" in html
    assert "analyzer_unavailable" in dashboard_html(stats, t.vertebrae)


def test_levels_count_uncertain_vertebrae_apart() -> None:
    from reports.stats import levels_affected

    v = pd.DataFrame({"level": ["L1", "L1", "L2", "L3"], "grade": [0, 2, 0, 1],
                      "type": ["normal", "wedge", "normal", "biconcave"],
                      "level_confidence": [0.99, 0.5, 0.74, 0.75]})
    t = levels_affected(v).set_index("level")
    assert list(t["uncertain"]) == [1, 1, 0]  # below 0.75 is uncertain
    assert list(t["seen"]) == [2, 1, 1] and t.loc["L1", "moderate_or_severe"] == 1
    assert list(levels_affected(v.drop(columns="level_confidence"))["uncertain"]) == [0, 0, 0]


def test_dashboard_marks_uncertain_fractured_levels(truth_tables, truth_stats) -> None:  # noqa: ANN001
    from reports.dashboard import study_records

    v = truth_tables.vertebrae
    frac = v[v["grade"] >= 1]
    assert len(frac)
    one = frac.index[0]
    unsure = v.assign(level_confidence=v["level_confidence"].where(v.index != one, 0.4))
    recs = {r["key"]: r["levels_fractured"] for r in study_records(truth_stats, unsure, {})}
    sure = {r["key"]: r["levels_fractured"] for r in study_records(truth_stats, v, {})}
    changed = [k for k in recs if recs[k] != sure[k]]
    assert len(changed) == 1
    level = str(v.loc[one, "level"])
    assert f"{level}? G" in recs[changed[0]] and f"{level} G" in sure[changed[0]]
