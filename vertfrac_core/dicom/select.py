"""Pick one series per study for spine analysis; give every other series a reason code.

Rejection rules, checked in the order of ``SeriesReason`` (the first that applies is recorded):
not CT; no installed decoder; localizer/scout; derived or secondary (reformat, MIP, secondary
capture); slice normal far from the body axis; too thick; too few slices; inconsistent geometry;
too short a craniocaudal coverage to hold a vertebra.

Ranking among the acceptable series (best first):

1. full field of view before a *targeted reconstruction*: a reconstruction diameter
   (ReconstructionDiameter, else pixel spacing x matrix) below ``min_full_fov_mm`` (a liver,
   cardiac or inner-ear reconstruction of the same scan) ranks after every full-FOV series;
   among targeted ones, those centred within ``max_center_offset_mm`` of the table isocentre
   (the x/y origin of patient coordinates on most scanners) come first;
2. thinner slices (``preferred_thickness_mm`` or less counts as one equal-best bucket, then
   thinner), 3. bone or soft-tissue kernel before unknown before lung/sharp, 4. non-contrast
   before contrast, 5. the most coverage. Kernel names are classified by common vendor
   conventions (GE STANDARD/SOFT/BONE/LUNG, Siemens B/Br/Bf/Hr + number with Bl/ >= 70 as
   lung-sharp, Philips A-D vs L, Canon FC numbers); unknown names rank in the middle.

A usable series outranked only because it is targeted gets ``TARGETED_RECONSTRUCTION``, any
other outranked one ``OUTRANKED``; a selected targeted series says so in its detail and in
``Decision.targeted``.

Headers cannot prove that a field of view contains the spine: a small FOV may be centred on the
column (a dedicated spine reconstruction) and a large one may be cut short or off-centre, and
some archives (converted or anonymised data) put the coordinate origin far from the isocentre,
so the centre rule only orders targeted series among themselves. Selection therefore returns,
per study, the whole ranked candidate list (``Selection.studies[study_key].ranked``): when
step 1 reports "no spine found" in the chosen series, the pipeline falls back to the next one.
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
    min_full_fov_mm: float = 320.0  # a reconstruction diameter below this is a targeted recon
    max_center_offset_mm: float = 100.0  # FOV centre farther from the isocentre: off-centre

    def __post_init__(self) -> None:
        if self.min_full_fov_mm <= 0 or self.max_center_offset_mm <= 0:
            raise ValueError("min_full_fov_mm and max_center_offset_mm must be positive; got "
                             f"{self.min_full_fov_mm} and {self.max_center_offset_mm}")


@dataclass(frozen=True)
class Decision:
    """The verdict on one series: ``reason`` None means selected for its study."""

    series: Series
    reason: SeriesReason | None
    detail: str
    rank: int | None  # 0 = best among acceptable series of the study; None if rejected
    targeted: bool = False  # an acceptable series with a FOV below ``min_full_fov_mm``

    @property
    def selected(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class StudySelection:
    """The candidates of one study: ``ranked`` holds the series keys of every acceptable
    series, best first (``chosen`` is ``ranked[0]``, None when nothing is acceptable). The
    pipeline tries the next key when step 1 finds no spine in the chosen series."""

    study_key: str
    chosen: str | None
    ranked: tuple[str, ...]


@dataclass(frozen=True)
class Selection:
    """The result of :func:`select_series`: one decision per input series (input order) and
    the ranked candidates per study key."""

    decisions: list[Decision]
    studies: dict[str, StudySelection]


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


def fov_diameter_mm(series: Series) -> float | None:
    """Reconstruction field of view (mm): ReconstructionDiameter when the header has it, else
    the larger in-plane extent of the matrix (pixel spacing x rows or columns)."""
    h = series.first
    if h.reconstruction_diameter and h.reconstruction_diameter > 0:
        return float(h.reconstruction_diameter)
    if not h.pixel_spacing or not h.rows or not h.cols:
        return None
    return float(max(h.rows * h.pixel_spacing[0], h.cols * h.pixel_spacing[1]))


def fov_center_offset_mm(series: Series) -> float | None:
    """In-plane (x, y) distance (mm) of the first image's centre from the patient-coordinate
    origin, which is the table isocentre on most scanners (not on all archives: see above)."""
    h = series.first
    if h.position is None or h.orientation is None or not h.pixel_spacing or not h.rows:
        return None
    o = np.asarray(h.orientation, dtype=float)
    centre = (np.asarray(h.position, dtype=float)
              + (h.cols - 1) / 2 * h.pixel_spacing[1] * o[:3]
              + (h.rows - 1) / 2 * h.pixel_spacing[0] * o[3:])
    return float(np.hypot(centre[0], centre[1]))


def targeted_tier(series: Series, policy: SelectionPolicy) -> int:
    """0 full field of view (or unknown); 1 targeted and centred; 2 targeted and off-centre."""
    fov = fov_diameter_mm(series)
    if fov is None or fov >= policy.min_full_fov_mm:
        return 0
    offset = fov_center_offset_mm(series)
    return 2 if offset is not None and offset > policy.max_center_offset_mm else 1


def _fov_text(series: Series) -> str:
    fov, off = fov_diameter_mm(series), fov_center_offset_mm(series)
    where = f", centre {off:.0f} mm from the isocentre" if off is not None else ""
    return f"reconstruction field of view {fov:.0f} mm{where}"


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
    """Sort key, smaller is better: targeted tier, thickness, kernel class, contrast, -coverage."""
    thick = slice_thickness(series)
    bucket = 0 if thick <= policy.preferred_thickness_mm + 1e-6 else 1
    cov = series.geometry.coverage_mm if series.geometry is not None else 0.0
    return (targeted_tier(series, policy), bucket, round(thick, 1),
            kernel_class(series.first.kernel), 1 if has_contrast(series) else 0, -round(cov, 0))


def select_series(series: list[Series], *, policy: SelectionPolicy = SelectionPolicy()) -> Selection:
    """One decision per series (same order as the input), at most one selected per study, and
    the ranked candidate list of every study (see :class:`StudySelection`)."""
    verdicts = {id(s): reject_reason(s, policy) for s in series}
    by_study: dict[str, list[Series]] = {s.study_key: [] for s in series}
    for s in series:
        if verdicts[id(s)] is None:
            by_study[s.study_key].append(s)
    ranks: dict[int, int] = {}
    ordered: dict[str, list[Series]] = {}
    for study, candidates in by_study.items():
        ordered[study] = sorted(candidates, key=lambda s: (rank_key(s, policy), s.series_key))
        ranks.update({id(s): r for r, s in enumerate(ordered[study])})
    out = []
    for s in series:
        v = verdicts[id(s)]
        tier = targeted_tier(s, policy)
        if v is not None:
            out.append(Decision(s, v[0], v[1], None))
            continue
        winner = ordered[s.study_key][0]
        if winner is s:
            detail = "best series of its study"
            if tier:
                detail += (f"; caution: targeted reconstruction ({_fov_text(s)}, full body "
                           f">= {policy.min_full_fov_mm:.0f} mm): the spine may lie outside it")
            out.append(Decision(s, None, detail, 0, tier > 0))
        elif tier > targeted_tier(winner, policy):
            out.append(Decision(s, SeriesReason.TARGETED_RECONSTRUCTION,
                                f"targeted reconstruction ({_fov_text(s)}; full body >= "
                                f"{policy.min_full_fov_mm:.0f} mm): ranks after series "
                                f"{winner.series_key[:8]}", ranks[id(s)], True))
        else:
            out.append(Decision(s, SeriesReason.OUTRANKED,
                                f"series {winner.series_key[:8]} ranks higher "
                                f"(field of view, thickness, kernel, contrast, coverage)",
                                ranks[id(s)], tier > 0))
    studies = {
        study: StudySelection(study, cands[0].series_key if cands else None,
                              tuple(c.series_key for c in cands))
        for study, cands in ordered.items()
    }
    return Selection(out, studies)
