"""One synthetic study as a PACS export: the series a scanner leaves behind, written to storage.

:func:`write_study` is a pure function of its :class:`StudyJob` (seeds, profile, series mix and
the defects drawn for this study): it samples the patient and the protocol, renders the main
acquisition once, derives the thick series, the localizer and the sagittal reformat from that
volume, and writes every series folder (``series_001`` ...) with its defects. Series numbers
follow scanner habit: the localizer first, the axial reconstructions in random order, the
reformat after them, the dose screen last (999).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import fsspec
import numpy as np

from vertfrac_core.phantom.acquisition import FieldOfView, sample_acquisition
from vertfrac_core.phantom.defects import (
    DefectKind,
    InjectedDefect,
    apply_corruption,
    plan_corruption,
    png_bytes,
    readme_text,
)
from vertfrac_core.phantom.dicom_writer import (
    SeriesHeader,
    derive_uid,
    encode_ct_series,
    encode_secondary_capture,
    open_fs,
    slice_file_name,
    write_files,
)
from vertfrac_core.phantom.population import sample_patient
from vertfrac_core.phantom.series_plan import (
    PlannedSeries,
    Renderer,
    SeriesMix,
    SeriesRole,
    plan_series,
    series_header,
)
from vertfrac_core.phantom.spine import build_phantom
from vertfrac_core.phantom.truth import patient_row, vertebra_rows
from vertfrac_core.volume import Volume

log = logging.getLogger(__name__)


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
    series, target = plan_series(job.mix, job.defects, job.profile, job.study_seed, phantom, acq,
                                 volume, rng, renderer)
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
        header = series_header(spec, s.acq, s, study_uid, for_uid, study_time)
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


def _non_dicom(job: StudyJob, fs: fsspec.AbstractFileSystem, study_dir: str, series: list[PlannedSeries], volume: Volume,
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


def _series_row(job: StudyJob, s: PlannedSeries, folder: str, header: SeriesHeader, written: list[str],
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
