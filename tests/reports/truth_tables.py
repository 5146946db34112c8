"""Screening tables built from the phantom generator's truth, through the pipeline's own schemas.

A stand-in "analyser" that reports exactly what the population model put into each patient
(:func:`vertfrac_core.phantom.population.sample_patient`): its levels, its intended fractures
(grade from the intended height loss) and its L1 attenuation. No image is rendered, so 200
patients take well under a second; the tables go through ``outcome_tables`` and the batch store
like the pipeline's, so the reports read them exactly as they read a real run's.

Extra realism for the funnel: unusable files and rejected series in ``series_index``; a few
failed and skipped studies; two nightly runs on different dates; one batch blocked by a
quality gate (its ``qc`` rows only).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pyarrow as pa

from vertfrac_core.batches import TableStore, publish, stage
from vertfrac_core.phantom.archive import ArchiveSettings, plan_jobs
from vertfrac_core.phantom.population import PatientSpec, fracture_probability, sample_patient
from vertfrac_core.result import ScanResult, ScanStatus, Stage, VertebraResult, density_flag
from vertfrac_core.tables import QC_SCHEMA, SERIES_INDEX_SCHEMA, ScanOutcome, outcome_tables

MODEL = "vf-truth0001"
RUN_DATES = (dt.date(2026, 3, 1), dt.date(2026, 3, 2))


def archive_seeds(patients: int, seed: int) -> list[int]:
    """The patient seeds of ``write_archive(url, ArchiveSettings(patients, seed))``, unrendered."""
    return [j.patient_seed for j in plan_jobs("/nowhere", ArchiveSettings(patients=patients, seed=seed))]


def expected_fracture_probability(spec: PatientSpec) -> float:
    """The population model's probability that this patient has >= 1 fracture (grade >= 1)."""
    raise_ = min(1.4, max(0.7, 1.0 + (110.0 - spec.l1_hu) / 200.0))
    return fracture_probability(spec.age, spec.sex) * raise_


def _key(kind: str, seed: int, n: int = 64) -> str:
    return hashlib.sha256(f"{kind}-{seed}".encode()).hexdigest()[:n]


def intended_grade(height_loss: float) -> int:
    return 1 if height_loss < 0.25 else 2 if height_loss < 0.40 else 3


def truth_result(spec: PatientSpec) -> ScanResult:
    """What a perfect analyser would report for ``spec`` (LPS mm, a straight column)."""
    fx = {f.level: f for f in spec.fractures}
    verts = []
    for i, level in enumerate(spec.levels):
        z = 300.0 - 30.0 * i
        hp = 24.0 + 0.4 * i
        f = fx.get(level)
        loss = f.height_loss if f else 0.05
        kind = f.type.value if f else "normal"
        ha = hp * (1 - loss) if kind in ("wedge", "normal") else hp * 0.95
        hm = hp * (1 - loss) if kind == "biconcave" else hp * 0.86
        kps = [[0.0, y, z + s * h / 2] for y, h in ((-15.0, ha), (0.0, hm), (15.0, hp)) for s in (1, -1)]
        hu = spec.l1_hu + 4.0 * (i - spec.levels.index("L1")) if "L1" in spec.levels else spec.l1_hu
        verts.append(VertebraResult(
            level=level, level_confidence=0.99, score=0.99, center_lps=[0.0, 0.0, z],
            keypoints_lps=kps, ha_mm=round(ha, 2), hm_mm=round(hm, 2), hp_mm=round(hp, 2),
            height_loss=round(loss, 4), grade=intended_grade(loss) if f else 0, type=kind,
            trabecular_hu=round(hu, 1), wedge_ratio=round(ha / hp, 4),
            biconcave_ratio=round(hm / hp, 4), crush_ratio=1.0 if kind != "crush" else round(1 - loss, 4)))
    return ScanResult(source=f"/archive/study-{spec.seed}", status=ScanStatus.OK, model_version=MODEL,
                      vertebrae=verts, l1_hu=round(spec.l1_hu, 1), l1_hu_level="L1",
                      density_flag=density_flag(spec.l1_hu), max_grade=max(v.grade for v in verts),
                      timings_s={"load": 1.0, "total": 4.0 + (spec.seed % 7)},
                      contrast="portal_venous" if spec.contrast else None)


def _index_rows(spec: PatientSpec, i: int) -> list[dict]:
    study, patient = _key("study", spec.seed), _key("patient", spec.seed)
    base = {"study_key": study, "patient_key": patient, "modality": "CT", "orientation": "AXIAL",
            "slice_thickness_mm": 1.0, "age_years": float(spec.age), "sex": spec.sex,
            "study_date": spec.study_date, "source": f"/archive/study_{i:04d}/series_1"}
    rows = [{**base, "series_key": _key("series", spec.seed), "content_hash": _key("content", spec.seed),
             "selected": True, "rank": 0, "reason": None}]
    if i % 3 == 0:  # a scout beside the axial series
        rows.append({**base, "series_key": _key("scout", spec.seed), "content_hash": _key("c-scout", spec.seed),
                     "selected": False, "rank": None, "reason": "localizer"})
    if i % 25 == 0:  # a file that is no DICOM
        rows.append({"source": "/archive/junk", "series_key": _key("junk", spec.seed),
                     "content_hash": _key("c-junk", spec.seed), "selected": False, "reason": "not_dicom"})
    return rows


def _qc_rows(batch_id: str, run_id: str, when: dt.datetime, *, passed: bool) -> list[dict]:
    return [{"batch_id": batch_id, "run_id": run_id, "table": "scans", "expectation": e,
             "column": c, "kwargs": json.dumps({}), "success": passed or e != "expect_failure_rate",
             "observed_value": "0.0" if passed else "0.8", "unexpected_count": 0, "element_count": 10,
             "published": passed, "checked_at": when}
            for e, c in (("expect_column_values_to_not_be_null", "series_key"),
                         ("expect_failure_rate", "status"))]


def write_truth_tables(dest: str, seeds: list[int], *, failures: bool = True) -> list[PatientSpec]:
    """Publish ``series_index``, ``scans``, ``vertebrae`` and ``qc`` for ``seeds`` under ``dest``.

    With ``failures``: every 40th study fails at localize (no spine), every 50th is skipped, so
    analysed studies are the others. Returns the patient specs in order.
    """
    store = TableStore(dest)
    specs = [sample_patient(s) for s in seeds]
    half = len(specs) // 2
    for r, (day, part) in enumerate(zip(RUN_DATES, (specs[:half], specs[half:]), strict=True)):
        run_id, when = f"run-{r}-{day:%Y%m%d}", dt.datetime(day.year, day.month, day.day, 3, tzinfo=dt.UTC)
        offset = 0 if r == 0 else half
        outcomes = []
        index_rows = []
        for j, spec in enumerate(part):
            i = offset + j
            index_rows += _index_rows(spec, i)
            result = truth_result(spec)
            if failures and i % 40 == 39:
                result = ScanResult.failure(result.source, MODEL, Stage.LOCALIZE, "no_spine", "no bone")
            elif failures and i % 50 == 49:
                result = ScanResult(source=result.source, status=ScanStatus.SKIPPED, model_version=MODEL,
                                    error_code="analyzer_unavailable", error="weights missing")
            outcomes.append(ScanOutcome(result=result, series_key=_key("series", spec.seed),
                                        content_hash=_key("content", spec.seed), model_version=MODEL,
                                        study_key=_key("study", spec.seed),
                                        patient_key=_key("patient", spec.seed)))
        batch = f"{day:%Y%m%d}T030000-{r:08x}"
        tables = outcome_tables(outcomes, run_id=run_id, batch_id=batch, processed_at=when)
        tables["series_index"] = pa.Table.from_pylist(index_rows, schema=SERIES_INDEX_SCHEMA)
        tables["qc"] = pa.Table.from_pylist(_qc_rows(batch, run_id, when, passed=True), schema=QC_SCHEMA)
        publish(store, stage(store, batch, day, tables))
        if r == 1:  # a blocked batch: only its qc rows are published
            blocked = f"{day:%Y%m%d}T040000-{99:08x}"
            qc = pa.Table.from_pylist(_qc_rows(blocked, run_id, when, passed=False), schema=QC_SCHEMA)
            publish(store, stage(store, blocked, day, {"qc": qc}))
    return specs
