"""Acceptance: on a 200-patient phantom archive, the prevalence by age band in the population
report agrees with the generator's truth within its confidence intervals.

The tables are what a perfect analyser would report (``truth_tables.py``): the test is about the
statistics and the report, not the model. Two truths are checked:

* the sample: the report's counts per age band are exactly the patients the generator gave a
  fracture (``PatientSpec.fractures``), over the studies analysed;
* the model: the population model's probability of a fracture (``fracture_probability`` with
  its attenuation factor), averaged over the analysed patients of a band, lies inside the band's
  Wilson 95 % interval, for the demo's archive seed; and over 30 archives of 200 the intervals
  cover it at about their nominal rate (a 95 % interval is not meant to cover every time).
"""

from __future__ import annotations

import json
import re

import pandas as pd
from truth_tables import archive_seeds, expected_fracture_probability

from reports.population import population_html
from reports.stats import age_band, prevalence
from vertfrac_core.phantom.population import sample_patient


def _report_bands(html: str) -> pd.DataFrame:
    m = re.search(r'<script type="application/json" id="vertfrac-stats">(.*?)</script>', html, re.S)
    assert m, "the report embeds its numbers"
    return pd.DataFrame(json.loads(m.group(1))["prevalence_any"]["age_band"]).set_index("age_band")


def _analysed(specs: list) -> list:
    return [s for i, s in enumerate(specs) if i % 40 != 39 and i % 50 != 49]  # truth_tables failures


def test_report_prevalence_by_age_band_matches_the_generator(truth_stats, truth_dest) -> None:  # noqa: ANN001
    _, specs = truth_dest
    html = population_html(truth_stats)
    report = _report_bands(html)
    truth = pd.DataFrame([{"age_band": age_band(s.age), "fractured": s.fractured,
                           "p_model": expected_fracture_probability(s)} for s in _analysed(specs)])
    by_band = truth.groupby("age_band").agg(n=("fractured", "size"), cases=("fractured", "sum"),
                                            p_model=("p_model", "mean"))
    assert set(report.index) == set(by_band.index) and len(report) >= 5
    for band, t in by_band.iterrows():
        r = report.loc[band]
        assert (r["n"], r["cases"]) == (t["n"], t["cases"]), band  # the sample, exactly
        assert r["ci_low"] <= r["prevalence"] <= r["ci_high"]
        assert r["ci_low"] <= t["p_model"] <= r["ci_high"], (band, t["p_model"], r["ci_low"], r["ci_high"])
        shown = f"{100 * r['prevalence']:.1f} %</td><td>{100 * r['ci_low']:.1f}–{100 * r['ci_high']:.1f} %"
        assert shown in html, f"the table of the report shows {band}"


def test_wilson_intervals_cover_the_model_at_their_nominal_rate() -> None:
    covered = total = 0
    for seed in range(100, 130):
        specs = [sample_patient(s) for s in archive_seeds(200, seed)]
        rows = pd.DataFrame([{"status": "ok", "age_band": age_band(s.age), "max_grade": int(s.fractured),
                              "p_model": expected_fracture_probability(s)} for s in specs])
        prev = prevalence(rows, ("age_band",)).set_index("age_band")
        expected = rows.groupby("age_band")["p_model"].mean()
        inside = (prev["ci_low"] <= expected) & (expected <= prev["ci_high"])
        covered, total = covered + int(inside.sum()), total + len(inside)
    assert total >= 170
    assert 0.90 <= covered / total <= 0.995, f"coverage {covered}/{total}"
