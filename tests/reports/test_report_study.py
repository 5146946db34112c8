"""Per-study reports: the plain-language summary, the page's contents, the PDF, key lookup."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from reports.study import (
    DISCLAIMER,
    density_sentence,
    resolve_study,
    study_html,
    study_pdf,
    study_report,
    summary_sentences,
)
from vertfrac_core.errors import InputError


def _verts(*rows: tuple[str, int, str]) -> pd.DataFrame:
    return pd.DataFrame([{"level": lv, "grade": g, "type": t} for lv, g, t in rows])


def test_summary_reads_like_the_example() -> None:
    v = _verts(("T12", 0, "normal"), ("L1", 2, "wedge"), ("L2", 0, "normal"))
    text = " ".join(summary_sentences("ok", v, 92.0, "L1", "likely_osteoporosis"))
    assert text == ("Moderate wedge fracture of L1 (Genant grade 2). "
                    "L1 attenuation 92 HU: osteoporosis likely; consider DXA.")


def test_summary_groups_levels_most_severe_first() -> None:
    v = _verts(("T7", 1, "biconcave"), ("T8", 1, "biconcave"), ("T12", 3, "crush"), ("L1", 0, "normal"),
               ("T11", 1, "biconcave"))
    assert summary_sentences("ok", v, 180.0, "L1", "unlikely_osteoporosis") == [
        "Severe crush fracture of T12 (Genant grade 3).",
        "Mild biconcave fractures of T7, T8 and T11 (Genant grade 1).",
        "L1 attenuation 180 HU: osteoporosis unlikely."]


def test_summary_without_fracture_failure_and_other_levels() -> None:
    v = _verts(("L2", 0, "normal"), ("T10", 0, "normal"))
    assert summary_sentences("ok", v, None, None, "unknown")[0] == \
        "No vertebral compression fracture detected (T10–L2 assessed)."
    assert density_sentence(130.0, "T12", "indeterminate", "arterial").startswith(
        "T12 (L1 not measurable) attenuation 130 HU: indeterminate")
    assert "Contrast-enhanced" in density_sentence(130.0, "L1", "indeterminate", "arterial")
    failed = summary_sentences("failed", v.iloc[0:0], None, None, None, failed_stage="localize",
                               error_code="no_spine")
    assert failed == ["No result: automated screening failed at the localize step (no_spine). "
                      "The scan needs its usual reading."]


@pytest.fixture(scope="module")
def fractured_report(truth_tables, truth_stats, truth_dest):  # noqa: ANN001, ANN201
    st = truth_stats.studies
    row = st[st["max_grade"].fillna(0).ge(2) & st["density_flag"].eq("likely_osteoporosis")].iloc[0]
    return row, study_report(truth_tables, row, dest=str(truth_dest[0]))


def test_study_page_has_every_required_part(fractured_report) -> None:  # noqa: ANN001
    row, rep = fractured_report
    html = study_html(rep)
    assert rep.study_key in html and rep.age_band in html and rep.sex_label in html
    assert rep.model_version in html and DISCLAIMER.split(",")[0] in html
    assert "osteoporosis likely" in html and f"{row['l1_hu']:.0f} HU" in html
    assert rep.summary[0] in html and "Genant grade" in rep.summary[0]
    assert html.count("<tr><td class=\"l\">") >= len(rep.vertebrae)  # vertebra table rows
    for col in ("h<sub>a</sub> mm", "h<sub>a</sub>/h<sub>p</sub>", "height loss", "grade", "type", "HU"):
        assert col in html
    assert 'src="data:image/png;base64,' in html and rep.picture_kind == "schematic"
    assert "http://" not in html and "https://" not in html  # self-contained


def test_study_pdf_has_two_pages(fractured_report) -> None:  # noqa: ANN001
    _, rep = fractured_report
    pdf = study_pdf(rep)
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf)) == 2  # text and table, then the picture


def test_failed_study_report_has_no_table(truth_tables, truth_stats) -> None:  # noqa: ANN001
    row = truth_stats.studies[truth_stats.studies["status"].eq("failed")].iloc[0]
    rep = study_report(truth_tables, row)
    html = study_html(rep)
    assert "No result: automated screening failed at the localize step" in html
    assert 'id="vertebrae"' not in html and rep.picture_png is None


def test_study_keys_resolve_by_unique_prefix(truth_stats) -> None:  # noqa: ANN001
    key = truth_stats.studies["study_key"].iloc[3]
    assert resolve_study(truth_stats.studies, key[:10].upper())["study_key"] == key
    with pytest.raises(InputError, match="too short"):
        resolve_study(truth_stats.studies, key[:4])
    with pytest.raises(InputError, match="no screened study"):
        resolve_study(truth_stats.studies, "zzzzzzzzzz")


def test_uncertain_levels_are_marked_in_the_summary() -> None:
    """A level stated with confidence below 0.75 is written with "?", and the reader is told what
    that means; the density sentence warns that "L1" may be another body."""
    v = pd.DataFrame([{"level": lv, "level_confidence": c, "grade": g, "type": t}
                      for lv, c, g, t in (("T12", 0.5, 0, "normal"), ("L1", 0.5, 2, "wedge"),
                                          ("L2", 0.98, 1, "wedge"))])
    text = summary_sentences("ok", v, 92.0, "L1", "likely_osteoporosis")
    assert text[0] == "Moderate wedge fracture of L1? (Genant grade 2)."
    assert text[1] == "Mild wedge fracture of L2 (Genant grade 1)."
    assert text[2].startswith("Levels marked ? are uncertain")
    assert text[3] == ("L1? attenuation 92 HU: osteoporosis likely; consider DXA. "
                       "The body measured may be another level (its level is uncertain).")
    sure = v.assign(level_confidence=0.99)
    assert not any("?" in s for s in summary_sentences("ok", sure, 92.0, "L1", "likely_osteoporosis"))
    calm = v.assign(grade=0)
    assert summary_sentences("ok", calm, 180.0, "L1", "unlikely_osteoporosis")[:2] == [
        "No vertebral compression fracture detected (T12?–L2 assessed).",
        summary_sentences("ok", v, 0.0, None, None)[2]]


def test_study_page_marks_an_uncertain_l1(truth_tables, truth_stats, truth_dest) -> None:  # noqa: ANN001
    """Where every level of a study is uncertain, its page says "L1?" in the density heading,
    the vertebra table and the summary."""
    from reports.load import Tables

    row = truth_stats.studies[truth_stats.studies["status"].eq("ok")].iloc[0]
    v = truth_tables.vertebrae
    mine = (v["series_key"] == row["series_key"]) & (v["content_hash"] == row["content_hash"])
    tables = Tables(**{**truth_tables.__dict__, "vertebrae": v.assign(
        level_confidence=v["level_confidence"].where(~mine, 0.4))})
    rep = study_report(tables, row, dest=str(truth_dest[0]))
    html = study_html(rep)
    assert rep.hu_level == "L1?" and "<p>L1? trabecular attenuation" in html
    assert '<td class="l">L1?</td>' in html
    assert any("may be another level" in s for s in rep.summary)
    sure = study_report(truth_tables, row, dest=str(truth_dest[0]))
    assert sure.hu_level == "L1" and "L1?" not in study_html(sure)


def test_thick_slices_get_a_caution_in_the_summary() -> None:
    v = _verts(("L1", 2, "wedge"), ("L2", 0, "normal"))
    thick = summary_sentences("ok", v, 92.0, "L1", "likely_osteoporosis", slice_mm=5.0)
    assert len(thick) == 3 and thick[2].startswith("Analysed on 5.0 mm slices: vertebral heights")
    for fine in (1.25, 2.0, None, float("nan")):
        assert len(summary_sentences("ok", v, 92.0, "L1", "likely_osteoporosis", slice_mm=fine)) == 2
    # a failed study says nothing about slices
    assert len(summary_sentences("failed", v.iloc[0:0], None, None, None, slice_mm=5.0)) == 1


def test_the_analysed_series_thickness_reaches_the_study_and_its_page(truth_tables, truth_dest) -> None:  # noqa: ANN001
    """The thickness is the analysed series' (after a no-spine fallback, not the first
    candidate's), the larger of slice thickness and spacing; the page shows the caution."""
    from reports.load import Tables
    from reports.stats import studies

    idx = truth_tables.series_index.copy()
    scans = truth_tables.scans.copy()
    ok = scans[scans["status"].eq("ok")].iloc[0]
    other = scans[scans["status"].eq("ok")].iloc[1]
    idx.loc[idx["series_key"].eq(ok["series_key"]), ["slice_thickness_mm", "slice_spacing_mm"]] = [3.0, 5.0]
    # the second study's result came from another series: its index row decides
    scans.loc[scans["series_key"].eq(other["series_key"]), "analyzed_series_key"] = ok["series_key"]
    t = Tables(**{**truth_tables.__dict__, "series_index": idx, "scans": scans})
    st = studies(t)
    by_series = st.set_index("series_key")["slice_mm"]
    assert by_series[ok["series_key"]] == 5.0 and by_series[other["series_key"]] == 5.0
    assert by_series.drop([ok["series_key"], other["series_key"]]).fillna(1.0).le(1.25).all()
    row = st[st["series_key"].eq(ok["series_key"])].iloc[0]
    assert "Analysed on 5.0 mm slices" in study_html(study_report(t, row, dest=str(truth_dest[0])))
