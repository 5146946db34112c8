"""A hostile-for-privacy archive: a phantom archive re-laid out the way many PACS exports are,
with identifiers in every path, plus identifiers in header free text.

``NAME_PID_DOB/<StudyInstanceUID>/<SeriesNumber>_<SeriesInstanceUID>/<SOPInstanceUID>.dcm``;
one study is packed as ``<PatientID>.zip`` with the same layout inside; one series carries the
patient's name in its SeriesDescription. Files that are not readable DICOM (the archive's
injected defects) keep their names, in the folder of the series they belonged to.
"""

from __future__ import annotations

import shutil
import warnings
import zipfile
from pathlib import Path

import pydicom

from vertfrac_core.phantom.defects import DefectRates

#: every file defect in a 5-patient archive (the no-spine study would leave too few to screen)
DEFECTS = DefectRates(truncated_file=0.4, missing_slice=0.3, duplicate_slices=0.3,
                      zero_byte_file=0.4, non_dicom_file=0.6, no_spine_series=0.3,
                      no_spine_study=0.0)


def _read(path: Path) -> pydicom.Dataset | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - injected junk
        return None
    return ds if ds.get("SOPInstanceUID") else None


def _series_folder(ds: pydicom.Dataset) -> Path:
    name = str(ds.PatientName).replace("^", "_")
    return (Path(f"{name}_{ds.PatientID}_{ds.PatientBirthDate}") / str(ds.StudyInstanceUID)
            / f"{int(ds.SeriesNumber or 0):03d}_{ds.SeriesInstanceUID}")


def relayout(src: Path, dest: Path, *, zip_one_study: bool = True,
             name_in_description: bool = True) -> None:
    """Copy the phantom archive ``src`` into ``dest`` with identifiers in every path."""
    studies = sorted(p for p in src.iterdir() if p.is_dir())
    for n, study in enumerate(studies):
        for series in sorted(p for p in study.iterdir() if p.is_dir()):
            files = sorted(p for p in series.iterdir() if p.is_file())
            headers = {f: _read(f) for f in files}
            known = next((ds for ds in headers.values() if ds is not None), None)
            if known is None:
                continue
            folder = dest / _series_folder(known)
            folder.mkdir(parents=True, exist_ok=True)
            for f, ds in headers.items():
                target = folder / (f"{ds.SOPInstanceUID}.dcm" if ds is not None else f.name)
                shutil.copy(f, target)
            if name_in_description and n == 0 and known.get("SeriesNumber") == 2:
                for f in folder.glob("*.dcm"):  # a technician typed the name into the series
                    if _read(f) is not None:
                        ds = pydicom.dcmread(f)
                        ds.SeriesDescription = f"CT {str(ds.PatientName).replace('^', ' ')}"
                        ds.save_as(f)
        for junk in (p for p in study.iterdir() if p.is_file()):  # study-level junk files
            shutil.copy(junk, dest / junk.name)
    if zip_one_study:
        patient = sorted(p for p in dest.iterdir() if p.is_dir())[-1]
        pid = patient.name.split("_")[2]
        with zipfile.ZipFile(dest / f"{pid}.zip", "w", zipfile.ZIP_STORED) as zf:
            for f in sorted(patient.rglob("*")):
                if f.is_file():
                    zf.write(f, str(f.relative_to(patient)))
        shutil.rmtree(patient)
