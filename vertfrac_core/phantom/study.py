"""One synthetic study as a PACS export: the series a scanner leaves behind, written to storage.

:func:`write_study` is a pure function of its :class:`StudyJob` (seeds, profile, series mix and
the defects drawn for this study): it samples the patient and the protocol, renders the main
acquisition once, derives the thick series, the localizer and the sagittal reformat from that
volume, and writes every series folder (``series_001`` ...) with its defects. Series numbers
follow scanner habit: the localizer first, the axial reconstructions in random order, the
reformat after them, the dose screen last (999).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

import fsspec
import numpy as np

from vertfrac_core.phantom.acquisition import Acquisition, FieldOfView, sample_acquisition
from vertfrac_core.phantom.defects import (
    DefectKind,
    InjectedDefect,
    apply_corruption,
    plan_corruption,
    png_bytes,
    readme_text,
)
from vertfrac_core.phantom.derived import LocalizerView, localizer, sagittal_reformat, thick_axial
from vertfrac_core.phantom.dicom_writer import (
    SeriesHeader,
    TransferSyntax,
    derive_uid,
    encode_ct_series,
    encode_secondary_capture,
    open_fs,
    slice_file_name,
    write_files,
)
from vertfrac_core.phantom.population import PatientSpec, sample_patient
from vertfrac_core.phantom.spine import Phantom, build_phantom
from vertfrac_core.phantom.truth import patient_row, vertebra_rows
from vertfrac_core.volume import Volume

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class StudyJob:
    """Everything one worker needs to write one study (picklable)."""

    index: int
    patient_seed: int
    study_seed: int
    profile: str
    mix: SeriesMix
    defects: tuple[DefectKind, ...]
    url: str  # archive root URL
    storage_options: dict | None = None  # fsspec options (credentials stay out of the truth)

    @property
    def folder(self) -> str:
        return f"study_{self.index + 1:04d}"


@dataclass(frozen=True)
class StudyRecord:
    """Ground-truth rows of one written study."""

    patient: dict
    series: tuple[dict, ...]
    vertebrae: tuple[dict, ...]
    defects: tuple[InjectedDefect, ...]
    n_files: int
    n_bytes: int
    seconds: float


@dataclass
class _Series:
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


def _header(spec: PatientSpec, acq: Acquisition, s: _Series, study_uid: str, for_uid: str,
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


def _plan_series(job: StudyJob, phantom: Phantom, acq: Acquisition, volume: Volume,
                 rng: np.random.Generator, renderer: Renderer) -> tuple[list[_Series], _Series]:
    """The series of the study, in folder order, and its main axial series."""
    mix = job.mix
    no_spine_study = DefectKind.NO_SPINE_STUDY in job.defects
    draws = rng.random(5)  # always five draws, so one choice never shifts the others
    region, th = _REGION[acq.fov], acq.slice_thickness_mm
    main_role = SeriesRole.NO_SPINE if no_spine_study else SeriesRole.BEST
    axial = [_Series(main_role, volume, acq, f"{region} {th:g} {acq.kernel}",
                     ("ORIGINAL", "PRIMARY", "AXIAL"), th, mix.transfer_syntax(rng))]
    if draws[0] < mix.thick and not no_spine_study and th < mix.thick_mm - 0.5:
        axial.append(_Series(SeriesRole.THICK, thick_axial(volume, mix.thick_mm), acq,
                             f"{region} {mix.thick_mm:g} {acq.kernel}",
                             ("ORIGINAL", "PRIMARY", "AXIAL"), mix.thick_mm, mix.transfer_syntax(rng)))
    if DefectKind.NO_SPINE_SERIES in job.defects:
        free = sample_acquisition(phantom, rng, job.profile, FieldOfView.SPINE_FREE)
        free = replace(free, manufacturer=acq.manufacturer, kernel=acq.kernel, kvp=acq.kvp,
                       position=acq.position, bone_kernel=acq.bone_kernel)
        free_vol = renderer(phantom, free, job.study_seed + 1)
        axial.append(_Series(SeriesRole.NO_SPINE, free_vol, free,
                             f"Liver {free.slice_thickness_mm:g} {acq.kernel}",
                             ("ORIGINAL", "PRIMARY", "AXIAL"), free.slice_thickness_mm,
                             mix.transfer_syntax(rng)))
    main = axial[0]
    order = rng.permutation(len(axial))
    series = [axial[i] for i in order]
    if draws[1] < mix.localizer:
        view = LocalizerView.CORONAL if draws[2] < 0.7 else LocalizerView.SAGITTAL
        series.insert(0, _Series(SeriesRole.LOCALIZER, localizer(volume, view), acq,
                                 "Topogram" if acq.manufacturer == "SIEMENS" else "Scout",
                                 ("ORIGINAL", "PRIMARY", "LOCALIZER"), None,
                                 mix.transfer_syntax(rng)))
    if draws[3] < mix.derived and not no_spine_study:
        sag = _spine_band(sagittal_reformat(volume, 3.0), phantom, 60.0)
        series.append(_Series(SeriesRole.DERIVED, sag, acq, "Sag MPR Spine",
                              ("DERIVED", "SECONDARY", "REFORMATTED"), sag.spacing_mm[2],
                              mix.transfer_syntax(rng)))
    for number, s in enumerate(series, start=1):
        s.number = number
    if draws[4] < mix.non_ct:
        series.append(_Series(SeriesRole.NON_CT, None, acq, "Dose Report",
                              ("DERIVED", "SECONDARY", "SCREEN SAVE"), None,
                              TransferSyntax.EXPLICIT_LE, number=999))
    return series, main


def _dose_screen(rng: np.random.Generator, length_mm: float) -> tuple[np.ndarray, str]:
    img = np.full((256, 320), 16, dtype=np.uint8)
    for r in range(40, 220, 24):  # table rows of a dose summary
        img[r:r + 14, 20:300] = 60
        img[r + 3:r + 11, 30:30 + int(rng.integers(60, 250))] = 230
    ctdi = float(rng.uniform(4.0, 16.0))
    return img, f"CTDIvol {ctdi:.2f} mGy; DLP {ctdi * length_mm / 10:.1f} mGy*cm"


def _thumbnail(volume: Volume) -> np.ndarray:
    sl = volume.hu[volume.shape[0] // 2]
    step = max(1, sl.shape[0] // 64)
    return (np.clip((sl[::step, ::step] + 160.0) / 400.0, 0, 1) * 255).astype(np.uint8)


def write_study(job: StudyJob, renderer: Renderer | None = None) -> StudyRecord:
    """Render and write one study of the archive at ``job.url``; return its ground truth."""
    t0 = time.perf_counter()
    if renderer is None:
        from vertfrac_core.phantom.render import render_ct

        renderer = render_ct
    spec = sample_patient(job.patient_seed)
    phantom = build_phantom(spec)
    rng = np.random.default_rng(np.random.SeedSequence([20262, job.study_seed]))
    fov = FieldOfView.SPINE_FREE if DefectKind.NO_SPINE_STUDY in job.defects else None
    acq = sample_acquisition(phantom, rng, job.profile, fov)
    volume = renderer(phantom, acq, job.study_seed)
    series, target = _plan_series(job, phantom, acq, volume, rng, renderer)
    study_uid = derive_uid("vertfrac-study", job.patient_seed, job.study_seed)
    for_uid = derive_uid(study_uid, "frame-of-reference")
    study_time = f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}"

    fs, root = open_fs(job.url, job.storage_options)
    study_dir = f"{root}/{job.folder}"
    defects: list[InjectedDefect] = []
    rows: list[dict] = []
    n_files = n_bytes = 0
    for idx, s in enumerate(series, start=1):
        folder = f"series_{idx:03d}"
        header = _header(spec, s.acq, s, study_uid, for_uid, study_time)
        files: Iterable[tuple[str, bytes]]
        record: list[tuple[DefectKind, str, str]] = []
        if s.volume is None:
            image, comments = _dose_screen(rng, acq.z_top_mm - acq.z_bottom_mm)
            files = [("IM0001.dcm", encode_secondary_capture(image, header, comments))]
        else:
            files = encode_ct_series(s.volume, header, s.ts)
            if s is target:
                n = s.volume.shape[0]
                corruption = plan_corruption(job.defects, n, rng)
                files = apply_corruption(files, corruption, _extra_name(n), record)
        sizes: list[int] = []
        written = write_files(fs, f"{study_dir}/{folder}", _measured(files, sizes))
        n_files += len(written)
        n_bytes += sum(sizes)
        by_kind: dict[DefectKind, list[str]] = {}
        for kind, name, _ in record:
            by_kind.setdefault(kind, []).append(f"{job.folder}/{folder}/{name}")
        for kind, paths in by_kind.items():
            details = "; ".join(d for k, _, d in record if k == kind)
            defects.append(InjectedDefect(kind, job.folder, folder, tuple(paths), details))
        if s.role == SeriesRole.NO_SPINE:
            kind = DefectKind.NO_SPINE_STUDY if s is target else DefectKind.NO_SPINE_SERIES
            defects.append(InjectedDefect(kind, job.folder, folder, (), f"field of view {s.acq.fov.value}"))
        rows.append(_series_row(job, s, folder, header, written, defects))
    if DefectKind.NON_DICOM_FILE in job.defects:
        d = _non_dicom(job, fs, study_dir, series, volume, rng)
        defects.append(d)
        n_files += 1
        for row in rows:
            if row["series_folder"] == d.series_folder:
                row["defects"] = [*row["defects"], d.kind.value]
                row["defect_files"] = [*row["defect_files"], *d.files]
                row["n_files"] += 1
    best = next((s for s in series if s.role == SeriesRole.BEST), None)
    vertebrae = vertebra_rows(phantom, job.folder, best.volume if best else None)
    patient = patient_row(phantom, job.folder, study_uid, best.acq if best else None, vertebrae)
    seconds = time.perf_counter() - t0
    log.info("wrote %s: %d series, %d files in %.1f s", job.folder, len(series), n_files, seconds)
    return StudyRecord(patient=patient, series=tuple(rows), vertebrae=tuple(vertebrae),
                       defects=tuple(defects), n_files=n_files, n_bytes=n_bytes, seconds=seconds)


def _extra_name(n_slices: int) -> Callable[[int], str]:
    """Names of extra files appended after the ``n_slices`` regular ones."""

    def name(m: int) -> str:
        return slice_file_name(n_slices + 1 + m)

    return name


def _measured(files: Iterable[tuple[str, bytes]], sizes: list[int]) -> Iterable[tuple[str, bytes]]:
    for name, data in files:
        sizes.append(len(data))
        yield name, data


def _non_dicom(job: StudyJob, fs: fsspec.AbstractFileSystem, study_dir: str, series: list[_Series], volume: Volume,
               rng: np.random.Generator) -> InjectedDefect:
    """A README at the study level or a PNG thumbnail inside a CT series folder."""
    ct = [i for i, s in enumerate(series, start=1) if s.volume is not None]
    if rng.random() < 0.5:
        write_files(fs, study_dir, [("README.TXT", readme_text(job.folder))])
        return InjectedDefect(DefectKind.NON_DICOM_FILE, job.folder, None,
                              (f"{job.folder}/README.TXT",), "export note (text)")
    folder = f"series_{ct[int(rng.integers(len(ct)))]:03d}"
    write_files(fs, f"{study_dir}/{folder}", [("thumbnail.png", png_bytes(_thumbnail(volume)))])
    return InjectedDefect(DefectKind.NON_DICOM_FILE, job.folder, folder,
                          (f"{job.folder}/{folder}/thumbnail.png",), "thumbnail (PNG)")


def _series_row(job: StudyJob, s: _Series, folder: str, header: SeriesHeader, written: list[str],
                defects: list[InjectedDefect]) -> dict:
    mine = [d for d in defects if d.series_folder == folder]
    shape = s.volume.shape if s.volume is not None else (1, 256, 320)
    nan = float("nan")
    spacing = s.volume.spacing_mm if s.volume is not None else (nan, nan, nan)
    slice_spacing = spacing[2] if shape[0] > 1 else nan
    return {
        "study_folder": job.folder, "series_folder": folder, "patient_seed": job.patient_seed,
        "study_uid": header.study_uid, "series_uid": header.series_uid,
        "series_number": header.series_number, "description": header.series_description,
        "role": s.role.value, "is_best": s.role == SeriesRole.BEST,
        "modality": "OT" if s.volume is None else "CT", "image_type": "\\".join(s.image_type),
        "transfer_syntax": s.ts.name.lower(), "signed": header.signed,
        "n_files": len(written), "n_slices": shape[0], "rows": shape[1], "columns": shape[2],
        "slice_thickness_mm": s.thickness_mm, "slice_spacing_mm": slice_spacing,
        "pixel_spacing_mm": spacing[0], "fov": s.acq.fov.value, "position": s.acq.position,
        "kernel": s.acq.kernel, "bone_kernel": s.acq.bone_kernel, "kvp": s.acq.kvp,
        "manufacturer": s.acq.manufacturer, "contrast": s.acq.contrast,
        "defects": [d.kind.value for d in mine],
        "defect_files": [f for d in mine for f in d.files],
    }
