"""The result of one scan: the stable, documented contract of ``result.json`` (DESIGN.md, "The
result of one scan"); the Parquet rows of ``scans`` and ``vertebrae`` carry the same fields.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class ScanStatus(str, Enum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class Stage(str, Enum):
    """Pipeline steps, in order; a failure names the one that failed."""

    LOAD = "load"
    LOCALIZE = "localize"
    REFORMAT = "reformat"
    DETECT = "detect"
    MORPHOMETRY = "morphometry"
    DENSITY = "density"
    RENDER = "render"


class DensityFlag(str, Enum):
    """Pickhardt et al. 2013 L1 trabecular attenuation bands."""

    LIKELY_OSTEOPOROSIS = "likely_osteoporosis"  # <= 110 HU
    INDETERMINATE = "indeterminate"  # 110-160 HU
    UNLIKELY_OSTEOPOROSIS = "unlikely_osteoporosis"  # > 160 HU
    UNKNOWN = "unknown"


def density_flag(l1_hu: float | None) -> DensityFlag:
    if l1_hu is None or not math.isfinite(l1_hu):
        return DensityFlag.UNKNOWN
    if l1_hu <= 110.0:
        return DensityFlag.LIKELY_OSTEOPOROSIS
    if l1_hu <= 160.0:
        return DensityFlag.INDETERMINATE
    return DensityFlag.UNLIKELY_OSTEOPOROSIS


@dataclass(frozen=True)
class VertebraResult:
    level: str
    level_confidence: float
    score: float
    center_lps: list[float]
    keypoints_lps: list[list[float]]  # 6 x 3, KEYPOINT_NAMES order
    ha_mm: float
    hm_mm: float
    hp_mm: float
    height_loss: float
    grade: int
    type: str  # normal | wedge | biconcave | crush
    trabecular_hu: float | None
    wedge_ratio: float | None = None
    biconcave_ratio: float | None = None
    crush_ratio: float | None = None


@dataclass(frozen=True)
class ScanResult:
    source: str
    status: ScanStatus
    model_version: str
    spine_curve_lps: list[list[float]] = field(default_factory=list)
    vertebrae: list[VertebraResult] = field(default_factory=list)
    l1_hu: float | None = None
    l1_hu_level: str | None = None
    density_flag: DensityFlag = DensityFlag.UNKNOWN
    max_grade: int | None = None
    images: dict[str, str] = field(default_factory=dict)
    failed_stage: Stage | None = None
    error_code: str | None = None
    error: str | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    contrast: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["density_flag"] = self.density_flag.value
        d["failed_stage"] = self.failed_stage.value if self.failed_stage else None
        return _clean(d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScanResult:
        d = dict(d)
        d["status"] = ScanStatus(d["status"])
        d["density_flag"] = DensityFlag(d.get("density_flag") or "unknown")
        d["failed_stage"] = Stage(d["failed_stage"]) if d.get("failed_stage") else None
        d["vertebrae"] = [VertebraResult(**v) for v in d.get("vertebrae", [])]
        return cls(**d)

    @classmethod
    def failure(cls, source: str, model_version: str, stage: Stage, code: str, message: str,
                timings_s: dict[str, float] | None = None) -> ScanResult:
        return cls(source=source, status=ScanStatus.FAILED, model_version=model_version,
                   failed_stage=stage, error_code=code, error=message, timings_s=timings_s or {})


def _clean(o: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, recursively (JSON has no NaN)."""
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    if isinstance(o, Enum):
        return o.value
    if hasattr(o, "item") and not isinstance(o, str):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o
