"""A small, honest stand-in for ``vertfrac_core.analyze`` used by the pipeline tests only.

It does real (if crude) image work so the pipeline is exercised on real volumes: it thresholds
bone (> 200 HU), follows the bright column slice by slice (the stub phantom's column, or the
spine of a rendered phantom), places one "vertebra" every 30 mm along it with 6 keypoints in LPS
mm and normal heights, and measures the median HU around each centre. No bone -> status failed at
stage 'localize' with error_code 'no_spine', like the real analyser. It grades nothing: every
vertebra is grade 0. Never shipped in the package.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from vertfrac_core.result import ScanResult, ScanStatus, Stage, VertebraResult, density_flag
from vertfrac_core.volume import Volume

LEVELS = ["C7"] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]


@dataclass(frozen=True)
class FakeModels:
    version: str
    compute_s: float  # busy CPU time per scan, standing in for network inference
    threshold_hu: float = 200.0


def load_models(device: str = "cpu", *, version: str = "fake-1", compute_s: float = 0.0,
                load_log: str | None = None, load_delay_s: float = 0.0) -> FakeModels:
    """Record each load (pid) in ``load_log`` so tests can count loads per worker;
    ``load_delay_s``: a slow load (torch import and weights on a fresh worker)."""
    time.sleep(load_delay_s)
    if load_log:
        with open(load_log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
    return FakeModels(version=version, compute_s=compute_s)


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = np.random.default_rng(0).random((64, 64))
    while time.perf_counter() < end:
        x = np.tanh(x @ x.T / 64.0)


def analyze_volume(volume: Volume, *, source: str, models: FakeModels) -> ScanResult:
    t0 = time.perf_counter()
    _busy(models.compute_s)
    hu = np.asarray(volume.hu, dtype=np.float32)
    mask = hu > models.threshold_hu
    per_slice = mask.sum(axis=(1, 2))
    ks = np.flatnonzero(per_slice >= 4)
    if ks.size < 2:
        return ScanResult.failure(source, models.version, Stage.LOCALIZE, "no_spine",
                                  f"no bone column found (threshold {models.threshold_hu} HU)")
    centres_ijk = []
    for k in ks:
        j, i = np.nonzero(mask[k])
        centres_ijk.append([np.median(i), np.median(j), k])
    curve = volume.voxel_to_lps(np.array(centres_ijk, dtype=float))
    order = np.argsort(-curve[:, 2])  # cranial first
    curve = curve[order]
    z_top, z_bottom = curve[0, 2], curve[-1, 2]
    n = int(max(1, min(len(LEVELS), (z_top - z_bottom) // 30)))
    vertebrae = []
    for m in range(n):
        z = z_top - 15 - 30 * m
        c = curve[np.argmin(np.abs(curve[:, 2] - z))].copy()
        c[2] = z
        kps = [c + [0, dy, dz] for dy in (-12.0, 0.0, 12.0) for dz in (12.0, -12.0)]
        ijk = np.rint(volume.lps_to_voxel(c[None])[0]).astype(int)
        k0, j0, i0 = (int(np.clip(v, 0, s - 1)) for v, s in zip(ijk[::-1], hu.shape, strict=True))
        patch = hu[max(0, k0 - 1):k0 + 2, max(0, j0 - 2):j0 + 3, max(0, i0 - 2):i0 + 3]
        level = LEVELS[len(LEVELS) - n + m]
        vertebrae.append(VertebraResult(
            level=level, level_confidence=0.5, score=0.9, center_lps=[float(v) for v in c],
            keypoints_lps=[[float(v) for v in p] for p in kps], ha_mm=24.0, hm_mm=24.0, hp_mm=24.0,
            height_loss=0.0, grade=0, type="normal", trabecular_hu=float(np.median(patch)),
            wedge_ratio=1.0, biconcave_ratio=1.0, crush_ratio=1.0))
    l1 = next((v for v in vertebrae if v.level == "L1"), vertebrae[-1])
    return ScanResult(source=source, status=ScanStatus.OK, model_version=models.version,
                      spine_curve_lps=[[float(v) for v in p] for p in curve[:: max(1, len(curve) // 20)]],
                      vertebrae=vertebrae, l1_hu=l1.trabecular_hu, l1_hu_level=l1.level,
                      density_flag=density_flag(l1.trabecular_hu), max_grade=0,
                      timings_s={"analyze": round(time.perf_counter() - t0, 4)})
