"""Which series a study holds and how each is labelled: the scanner's side of a PACS export.

:func:`plan_series` turns one rendered acquisition into the series a scanner and its archive
leave behind (best thin axial, thick axial, localizer, sagittal reformat, dose screen, and a
spine-free reconstruction when that defect was drawn); :func:`series_header` gives each its DICOM
header with vendor-typical values (model names, int16 storage for GE and Toshiba, windows).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np

from vertfrac_core.phantom.acquisition import Acquisition, FieldOfView, sample_acquisition
from vertfrac_core.phantom.defects import DefectKind
from vertfrac_core.phantom.derived import LocalizerView, localizer, sagittal_reformat, thick_axial
from vertfrac_core.phantom.dicom_writer import SeriesHeader, TransferSyntax, derive_uid
from vertfrac_core.phantom.population import PatientSpec
from vertfrac_core.phantom.spine import Phantom
from vertfrac_core.volume import Volume

Renderer = Callable[[Phantom, Acquisition, int], Volume]

_MODELS = {"SIEMENS": "SOMATOM Definition AS+", "GE MEDICAL SYSTEMS": "Revolution CT",
           "Philips": "iCT 256", "TOSHIBA": "Aquilion ONE"}
_SIGNED = ("GE MEDICAL SYSTEMS", "TOSHIBA")  # vendors that store int16
_BODY_PART = {FieldOfView.CHEST: "CHEST", FieldOfView.ABDOMEN: "ABDOMEN",
              FieldOfView.CAP: "CHESTABDPELVIS", FieldOfView.SPINE_FREE: "ABDOMEN"}
_REGION = {FieldOfView.CHEST: "Thorax", FieldOfView.ABDOMEN: "Abdomen",
           FieldOfView.CAP: "ThxAbdPel", FieldOfView.SPINE_FREE: "Liver"}


class SeriesRole(StrEnum):
    BEST = "best"  # thin axial reconstruction of the spine: what a selector should pick
    THICK = "thick"  # thick axial reconstruction of the same scan
    LOCALIZER = "localizer"
    DERIVED = "derived"  # sagittal reformat (DERIVED\SECONDARY\REFORMATTED)
    NON_CT = "non_ct"  # dose screen, Secondary Capture, Modality OT
    NO_SPINE = "no_spine"  # axial series whose field of view misses the column


@dataclass(frozen=True)
class SeriesMix:
    """Probability per study of each optional series, and the transfer-syntax mix per series."""

    thick: float = 0.6
    localizer: float = 0.85
    derived: float = 0.35
    non_ct: float = 0.3
    thick_mm: float = 5.0
    explicit_le: float = 0.5
    rle_lossless: float = 0.25
    j2k_lossless: float = 0.25

    def transfer_syntax(self, rng: np.random.Generator) -> TransferSyntax:
        p = np.array([self.explicit_le, self.rle_lossless, self.j2k_lossless])
        return list(TransferSyntax)[int(rng.choice(3, p=p / p.sum()))]


@dataclass
class PlannedSeries:
    """A series about to be written (internal, mutable while the study is assembled)."""

    role: SeriesRole
    volume: Volume | None  # None for the Secondary Capture
    acq: Acquisition
    description: str
    image_type: tuple[str, ...]
    thickness_mm: float | None
    ts: TransferSyntax
    number: int = 0


def _accession(patient_seed: int) -> str:
    return "A" + str(int(hashlib.sha256(f"acc-{patient_seed}".encode()).hexdigest()[:12], 16))[-9:]


def series_header(spec: PatientSpec, acq: Acquisition, s: PlannedSeries, study_uid: str, for_uid: str,
            study_time: str) -> SeriesHeader:
    hh, mm, ss = int(study_time[:2]), int(study_time[2:4]), int(study_time[4:])
    minutes = hh * 60 + mm + s.number
    bone = acq.bone_kernel and s.role != SeriesRole.LOCALIZER
    return SeriesHeader(
        patient_id=spec.patient_id, patient_name=spec.patient_name, birth_date=spec.birth_date,
        sex=spec.sex, age_years=spec.age, study_date=spec.study_date, study_time=study_time,
        series_time=f"{(minutes // 60) % 24:02d}{minutes % 60:02d}{ss:02d}",
        study_uid=study_uid, series_uid=derive_uid(study_uid, "series", s.number),
        frame_of_reference_uid=for_uid, series_number=s.number,
        series_description=s.description, accession_number=_accession(spec.seed),
        manufacturer=acq.manufacturer, model=_MODELS.get(acq.manufacturer, "CT"),
        kernel=acq.kernel, kvp=acq.kvp,
        contrast_agent="IOHEXOL 350" if acq.contrast else None, image_type=s.image_type,
        patient_position=acq.position, body_part=_BODY_PART[acq.fov],
        slice_thickness_mm=s.thickness_mm,
        window_center=500.0 if bone else (1000.0 if s.role == SeriesRole.LOCALIZER else 40.0),
        window_width=2000.0 if bone else (3000.0 if s.role == SeriesRole.LOCALIZER else 400.0),
        signed=acq.manufacturer in _SIGNED,
    )


def _spine_band(volume: Volume, phantom: Phantom, half_width_mm: float) -> Volume:
    """The sagittal slices of ``volume`` (stepping along x) within ``half_width_mm`` of the column."""
    x0 = float(np.median(phantom.curve_lps[:, 0]))
    xs = volume.affine_lps[0, 3] + volume.affine_lps[0, 2] * np.arange(volume.shape[0])
    keep = np.nonzero(np.abs(xs - x0) <= half_width_mm)[0]
    if keep.size == 0:
        return volume
    k0, k1 = int(keep[0]), int(keep[-1]) + 1
    aff = volume.affine_lps.copy()
    aff[:3, 3] = aff[:3, 3] + k0 * aff[:3, 2]
    return Volume(hu=volume.hu[k0:k1], affine_lps=aff, meta=volume.meta)


def plan_series(mix: SeriesMix, defects: tuple[DefectKind, ...], profile: str, render_seed: int,
                phantom: Phantom, acq: Acquisition, volume: Volume, rng: np.random.Generator,
                renderer: Renderer) -> tuple[list[PlannedSeries], PlannedSeries]:
    """The series of the study, in folder order, and its main axial series."""
    no_spine_study = DefectKind.NO_SPINE_STUDY in defects
    draws = rng.random(5)  # always five draws, so one choice never shifts the others
    region, th = _REGION[acq.fov], acq.slice_thickness_mm
    main_role = SeriesRole.NO_SPINE if no_spine_study else SeriesRole.BEST
    axial = [PlannedSeries(main_role, volume, acq, f"{region} {th:g} {acq.kernel}",
                     ("ORIGINAL", "PRIMARY", "AXIAL"), th, mix.transfer_syntax(rng))]
    if draws[0] < mix.thick and not no_spine_study and th < mix.thick_mm - 0.5:
        axial.append(PlannedSeries(SeriesRole.THICK, thick_axial(volume, mix.thick_mm), acq,
                             f"{region} {mix.thick_mm:g} {acq.kernel}",
                             ("ORIGINAL", "PRIMARY", "AXIAL"), mix.thick_mm, mix.transfer_syntax(rng)))
    if DefectKind.NO_SPINE_SERIES in defects:
        free = sample_acquisition(phantom, rng, profile, FieldOfView.SPINE_FREE)
        free = replace(free, manufacturer=acq.manufacturer, kernel=acq.kernel, kvp=acq.kvp,
                       position=acq.position, bone_kernel=acq.bone_kernel)
        free_vol = renderer(phantom, free, render_seed + 1)
        axial.append(PlannedSeries(SeriesRole.NO_SPINE, free_vol, free,
                             f"Liver {free.slice_thickness_mm:g} {acq.kernel}",
                             ("ORIGINAL", "PRIMARY", "AXIAL"), free.slice_thickness_mm,
                             mix.transfer_syntax(rng)))
    main = axial[0]
    order = rng.permutation(len(axial))
    series = [axial[i] for i in order]
    if draws[1] < mix.localizer:
        view = LocalizerView.CORONAL if draws[2] < 0.7 else LocalizerView.SAGITTAL
        series.insert(0, PlannedSeries(SeriesRole.LOCALIZER, localizer(volume, view), acq,
                                 "Topogram" if acq.manufacturer == "SIEMENS" else "Scout",
                                 ("ORIGINAL", "PRIMARY", "LOCALIZER"), None,
                                 mix.transfer_syntax(rng)))
    if draws[3] < mix.derived and not no_spine_study:
        sag = _spine_band(sagittal_reformat(volume, 3.0), phantom, 60.0)
        series.append(PlannedSeries(SeriesRole.DERIVED, sag, acq, "Sag MPR Spine",
                              ("DERIVED", "SECONDARY", "REFORMATTED"), sag.spacing_mm[2],
                              mix.transfer_syntax(rng)))
    for number, s in enumerate(series, start=1):
        s.number = number
    if draws[4] < mix.non_ct:
        series.append(PlannedSeries(SeriesRole.NON_CT, None, acq, "Dose Report",
                              ("DERIVED", "SECONDARY", "SCREEN SAVE"), None,
                              TransferSyntax.EXPLICIT_LE, number=999))
    return series, main
