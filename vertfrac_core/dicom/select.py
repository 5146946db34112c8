"""Pick one series per study for spine analysis; give every other series a reason code.

Rejection rules, checked in the order of ``SeriesReason`` (the first that applies is recorded):
not CT; no installed decoder; localizer/scout; derived or secondary (reformat, MIP, secondary
capture); slice normal far from the body axis; too thick; too few slices; inconsistent geometry;
too short a craniocaudal coverage to hold a vertebra.

Ranking among the acceptable series (best first): thinner slices (``preferred_thickness_mm`` or
less counts as equal-best bucket, then thinner), bone or soft-tissue kernel before unknown before
lung/sharp, non-contrast before contrast, then the most coverage. Kernel names are classified
by common vendor conventions (GE STANDARD/SOFT/BONE/LUNG, Siemens B/Br/Bf/Hr + number with
Bl/ >= 70 as lung-sharp, Philips A-D vs L, Canon FC numbers); unknown names rank in the middle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from vertfrac_core.dicom import codecs
from vertfrac_core.dicom.grouping import Series, is_localizer
from vertfrac_core.dicom.reasons import SeriesReason

DERIVED_TYPES = {"MPR", "MIP", "MINIP", "AVERAGE", "REFORMATTED", "PROJECTION IMAGE", "CURVED",
                 "VOLUME", "3D", "VRT", "CPR", "SUBTRACTION"}
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


@dataclass(frozen=True)
class SelectionPolicy:
    """Thresholds of series selection."""

    max_thickness_mm: float = 5.0
    preferred_thickness_mm: float = 3.0
    min_slices: int = 10
    min_coverage_mm: float = 30.0  # one lumbar body plus a disc is about 30-35 mm
    max_axial_angle_deg: float = 35.0  # slice normal vs the body (S-I) axis; gantry tilt < 30


@dataclass(frozen=True)
class Decision:
    """The verdict on one series: ``reason`` None means selected for its study."""

    series: Series
    reason: SeriesReason | None
    detail: str
    rank: int | None  # 0 = best among acceptable series of the study; None if rejected

    @property
    def selected(self) -> bool:
        return self.reason is None


def kernel_class(kernel: str) -> int:
    """0 bone or soft tissue, 1 unknown, 2 lung or very sharp."""
    k = kernel.upper().replace("\\", " ")
    if "LUNG" in k or "CHEST" in k or re.match(r"^BL\d", k) or re.match(r"^L\b", k):
        return 2
    if any(w in k for w in ("BONE", "STANDARD", "SOFT", "BODY", "ABDOMEN", "SPINE")):
        return 0
    m = re.match(r"^(?:BR|BF|B|HR|IR|QR|JR)(\d{2})", k)
    if m:
        return 0 if int(m.group(1)) < 70 else 2
    m = re.match(r"^FC(\d{2})", k)
    if m:
        return 0 if int(m.group(1)) < 50 else 2
    if re.match(r"^[A-EY][A-C]?\b", k):
        return 0
    return 1


def has_contrast(series: Series) -> bool:
    agent = series.first.contrast_agent.strip().upper()
    return bool(agent) and agent not in {"NONE", "NO", "N", "0", "NONE APPLIED", "NO CONTRAST"}


def slice_thickness(series: Series) -> float:
    """Nominal slice thickness (mm): the header value, else the slice step."""
    t = series.first.slice_thickness
    if t and t > 0:
        return float(t)
    return float(series.geometry.step_mm) if series.geometry is not None else float("nan")


def axial_angle_deg(series: Series) -> float | None:
    """Angle between the slice normal and the patient S-I axis, or None without geometry."""
    if series.geometry is None:
        return None
    return float(np.degrees(np.arccos(min(1.0, abs(float(series.geometry.normal[2]))))))


def reject_reason(series: Series, policy: SelectionPolicy) -> tuple[SeriesReason, str] | None:
    """The first rule that rejects a series, with a human-readable detail, or None."""
    h = series.first
    if h.modality != "CT":
        return SeriesReason.NOT_CT, f"modality is {h.modality or 'missing'}, not CT"
    if h.transfer_syntax and not codecs.is_available(h.transfer_syntax):
        return SeriesReason.UNSUPPORTED_TRANSFER_SYNTAX, codecs.decoder_status(h.transfer_syntax)[1]
    if is_localizer(h) or any(w in h.series_description.upper() for w in ("SCOUT", "TOPOGRAM", "LOCALIZER", "SURVIEW")):
        return SeriesReason.LOCALIZER, f"image type {'/'.join(h.image_type)} marks a localizer"
    derived = DERIVED_TYPES.intersection(h.image_type)
    if (h.image_type[:1] == ("DERIVED",) or h.image_type[1:2] == ("SECONDARY",) or derived
            or h.sop_class_uid.startswith(SECONDARY_CAPTURE)):
        return SeriesReason.DERIVED, f"image type {'/'.join(h.image_type) or '?'} is derived/secondary"
    angle = axial_angle_deg(series)
    if angle is not None and angle > policy.max_axial_angle_deg:
        return SeriesReason.NON_AXIAL, (f"slice normal is {angle:.0f} deg from the body axis "
                                        f"(limit {policy.max_axial_angle_deg:.0f}): not axial")
    thick = slice_thickness(series)
    step = series.geometry.step_mm if series.geometry is not None and series.n_slices > 1 else 0.0
    if max(thick, step) > policy.max_thickness_mm:
        return SeriesReason.TOO_THICK, (f"slices {thick:.1f} mm thick, {step:.1f} mm apart "
                                        f"(limit {policy.max_thickness_mm:.1f} mm)")
    if series.n_slices < policy.min_slices:
        return SeriesReason.TOO_FEW_SLICES, f"{series.n_slices} slices (at least {policy.min_slices})"
    if series.geometry is None or not series.geometry.usable:
        detail = series.geometry_problem or "; ".join(series.geometry.problems)  # type: ignore[union-attr]
        return SeriesReason.INCONSISTENT_GEOMETRY, detail
    cov = series.geometry.coverage_mm
    if cov < policy.min_coverage_mm:
        return SeriesReason.SHORT_COVERAGE, (f"covers {cov:.0f} mm along the body axis "
                                             f"(at least {policy.min_coverage_mm:.0f} mm)")
    return None


def rank_key(series: Series, policy: SelectionPolicy) -> tuple[float, ...]:
    """Sort key, smaller is better: thickness, kernel class, contrast, -coverage."""
    thick = slice_thickness(series)
    bucket = 0 if thick <= policy.preferred_thickness_mm + 1e-6 else 1
    cov = series.geometry.coverage_mm if series.geometry is not None else 0.0
    return (bucket, round(thick, 1), kernel_class(series.first.kernel),
            1 if has_contrast(series) else 0, -round(cov, 0))


def select_series(series: list[Series], *, policy: SelectionPolicy = SelectionPolicy()) -> list[Decision]:
    """One decision per series (same order as the input); at most one selected per study."""
    verdicts = {id(s): reject_reason(s, policy) for s in series}
    by_study: dict[str, list[Series]] = {}
    for s in series:
        if verdicts[id(s)] is None:
            by_study.setdefault(s.study_key, []).append(s)
    ranks: dict[int, int] = {}
    best: dict[str, Series] = {}
    for study, candidates in by_study.items():
        ordered = sorted(candidates, key=lambda s: (rank_key(s, policy), s.series_key))
        best[study] = ordered[0]
        ranks.update({id(s): r for r, s in enumerate(ordered)})
    out = []
    for s in series:
        v = verdicts[id(s)]
        if v is not None:
            out.append(Decision(s, v[0], v[1], None))
        elif best[s.study_key] is s:
            out.append(Decision(s, None, "best series of its study", 0))
        else:
            winner = best[s.study_key]
            out.append(Decision(s, SeriesReason.OUTRANKED,
                                f"series {winner.series_key[:8]} ranks higher "
                                f"(thickness, kernel, contrast, coverage)", ranks[id(s)]))
    return out
