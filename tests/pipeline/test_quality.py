"""Quality gates: good batches pass; out-of-range values, duplicate keys, too many failures and
inconsistent tables fail, and every expectation becomes a qc row."""

from __future__ import annotations

import dataclasses

import pytest

from vertfrac_core.quality import QualityPolicy, check_batch
from vertfrac_core.result import ScanResult, ScanStatus, Stage, VertebraResult
from vertfrac_core.tables import ScanOutcome, outcome_tables

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _vertebra(level: str, **kw: object) -> VertebraResult:
    base = dict(level=level, level_confidence=0.9, score=0.9, center_lps=[0.0, 0.0, 0.0],
                keypoints_lps=[[0.0, 0.0, float(z)] for z in range(6)], ha_mm=24.0, hm_mm=22.0,
                hp_mm=25.0, height_loss=0.05, grade=0, type="normal", trabecular_hu=150.0)
    base.update(kw)
    return VertebraResult(**base)  # type: ignore[arg-type]


def _ok(key: str, vertebrae: list[VertebraResult] | None = None) -> ScanOutcome:
    vs = vertebrae if vertebrae is not None else [_vertebra("L1"), _vertebra("L2")]
    r = ScanResult(source="s", status=ScanStatus.OK, model_version="m", vertebrae=vs,
                   l1_hu=150.0, max_grade=max((v.grade for v in vs), default=0))
    return ScanOutcome(result=r, series_key=key, content_hash="h", model_version="m", study_key="st" + key)


def _failed(key: str) -> ScanOutcome:
    r = ScanResult.failure("s", "m", Stage.LOAD, "dicom_error", "broken")
    return ScanOutcome(result=r, series_key=key, content_hash="h", model_version="m")


def _check(outcomes: list[ScanOutcome], **policy: float) -> tuple[list[dict], bool]:
    tables = outcome_tables(outcomes, run_id="r", batch_id="b")
    qc, ok = check_batch(tables, batch_id="b", run_id="r", policy=QualityPolicy(**policy))
    return qc.to_pylist(), ok


def _failures(rows: list[dict]) -> set[tuple[str, str, str | None]]:
    return {(r["table"], r["expectation"], r["column"]) for r in rows if not r["success"]}


def test_good_batch_passes_and_every_expectation_is_a_row() -> None:
    rows, ok = _check([_ok("a"), _ok("b"), _failed("c")])
    assert ok, _failures(rows)
    assert {r["table"] for r in rows} == {"scans", "vertebrae"} and len(rows) > 20
    assert all(r["published"] for r in rows)


def test_out_of_range_grade_and_height_fail() -> None:
    bad = _ok("a", [_vertebra("L1", grade=5, ha_mm=300.0)])
    rows, ok = _check([bad])
    assert not ok and not any(r["published"] for r in rows)
    f = _failures(rows)
    assert ("vertebrae", "expect_column_values_to_be_between", "grade") in f
    assert ("vertebrae", "expect_column_values_to_be_between", "ha_mm") in f


def test_duplicate_keys_fail() -> None:
    rows, ok = _check([_ok("a"), _ok("a")])
    assert not ok
    assert ("scans", "expect_compound_columns_to_be_unique",
            "series_key,content_hash,model_version") in _failures(rows)


def test_failure_rate_threshold() -> None:
    outcomes = [_ok("a"), _failed("b"), _failed("c")]
    assert _check(outcomes, max_failure_rate=0.7)[1]
    rows, ok = _check(outcomes, max_failure_rate=0.5)
    assert not ok and ("scans", "expect_column_values_to_be_in_set", "status") in _failures(rows)


def test_tables_must_agree() -> None:
    o = _ok("a")
    tables = outcome_tables([o], run_id="r", batch_id="b")
    tables["vertebrae"] = tables["vertebrae"].slice(0, 1)  # a vertebra row lost
    qc, ok = check_batch(tables, batch_id="b", run_id="r")
    assert not ok
    assert ("scans", "expect_column_pair_values_to_be_equal", "n_vertebrae,vertebra_rows") in _failures(qc.to_pylist())
    orphan = outcome_tables([dataclasses.replace(o, series_key="zz")], run_id="r", batch_id="b")
    tables = {"scans": outcome_tables([o], run_id="r", batch_id="b")["scans"],
              "vertebrae": orphan["vertebrae"]}
    qc, ok = check_batch(tables, batch_id="b", run_id="r")
    assert not ok and ("vertebrae", "expect_column_values_to_be_in_set", "in_scans") in _failures(qc.to_pylist())
