"""`make bench-gpu` compares the CUDA result of a scan with the CPU one (`bench_analyze.agreement`)."""

from __future__ import annotations

from dataclasses import replace

from benchmarks.bench_analyze import agreement
from vertfrac_core.result import ScanResult, ScanStatus, VertebraResult


def _v(level: str, grade: int, ha: float, shift: float = 0.0) -> VertebraResult:
    kp = [[0.0, 0.0, float(z) + shift] for z in range(6)]
    return VertebraResult(level=level, level_confidence=0.9, score=0.9, center_lps=[0.0, 0.0, 0.0],
                          keypoints_lps=kp, ha_mm=ha, hm_mm=20.0, hp_mm=25.0, height_loss=0.0,
                          grade=grade, type="normal", trabecular_hu=150.0, wedge_ratio=1.0,
                          biconcave_ratio=1.0, crush_ratio=1.0)


def test_agreement_reports_differences_between_devices() -> None:
    a = ScanResult(source="s", status=ScanStatus.OK, model_version="m", vertebrae=[_v("L1", 0, 25.0), _v("L2", 0, 26.0)])
    same = agreement(a, a)
    assert "2 vertebrae, levels and grades identical" in same and "keypoint difference 0.000 mm" in same
    b = replace(a, vertebrae=[_v("L1", 0, 25.02, shift=0.01), _v("L2", 2, 26.0)])
    diff = agreement(a, b)
    assert "DIFFERENT" in diff and "keypoint difference 0.010 mm" in diff and "height difference 0.020 mm" in diff
    assert agreement(a, replace(a, vertebrae=a.vertebrae[:1])).startswith("DIFFERENT: ok with 2")
