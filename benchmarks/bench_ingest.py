"""DICOM ingest benchmarks, run side by side in one process.

1. Load a 512x512x400 series, uncompressed and JPEG 2000 lossless: ``vertfrac_core.dicom``
   (index + assemble) vs SimpleITK ``ImageSeriesReader`` (GDCM file-name sort + read), best of
   ``repeats`` runs each, alternating, on the same warm files; the arrays are compared.
2. Index 10,000 small local DICOM files (100 series x 100 slices of 32x32): files per second.
3. Memory: peak resident memory of loading a 512x512x1000 uncompressed series, in a fresh
   subprocess, relative to the volume's int16 size.

Writes ``benchmarks/results/ingest.md`` and ``ingest.csv``. ``python -m benchmarks.bench_ingest``.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _phantom_slice(k: int, n: int, size: int = 512) -> np.ndarray:
    """A body-like uint16 slice (stored = HU + 1024): ellipse of soft tissue, a bony ring, noise."""
    rng = np.random.default_rng(k)
    y, x = np.mgrid[:size, :size].astype(np.float32) / size - 0.5
    img = np.full((size, size), 0, np.float32)  # air = -1024 HU
    body = (x / 0.42) ** 2 + (y / 0.3) ** 2 < 1
    img[body] = 1024 + 40
    r = np.hypot(x, y + 0.12 + 0.02 * np.sin(k / n * 6))
    img[(r > 0.04) & (r < 0.06)] = 1024 + 700
    img[r <= 0.04] = 1024 + 200
    img += rng.normal(0, 12, img.shape).astype(np.float32) * body
    return np.clip(img, 0, 4095).astype(np.uint16)


def write_series(folder: Path, n: int, *, size: int = 512, j2k: bool = False, seed: int = 0) -> None:
    """Write ``n`` axial CT slices (1 mm apart, shuffled file names) with pydicom."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    order = np.random.default_rng(seed).permutation(n)
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientID, ds.PatientName, ds.PatientSex, ds.PatientAge = "BENCH", "Bench^Phantom", "F", "060Y"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyDate, ds.SeriesNumber, ds.InstanceNumber = "20260101", 1, int(k + 1)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-250.0, -250.0, float(-k)]
        ds.PixelSpacing, ds.SliceThickness = [0.9765625, 0.9765625], 1.0
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.ConvolutionKernel = -1024, 1, "STANDARD"
        ds.PixelData = _phantom_slice(k, n, size).tobytes()
        if j2k:
            ds.compress(JPEG2000Lossless)
        ds.save_as(folder / f"IM{order[k]:05d}.dcm", enforce_file_format=True)


def _best(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _ours(folder: Path) -> np.ndarray:
    from vertfrac_core.dicom.load import load_dicom

    return load_dicom(str(folder)).hu


def _sitk(folder: Path) -> np.ndarray:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute())


def bench_load(folder: Path, label: str, repeats: int) -> list[dict[str, object]]:
    """Alternate ours / SimpleITK ``repeats`` times; best time of each; compare the arrays."""
    t_ours, t_sitk = float("inf"), float("inf")
    a = b = None
    for _ in range(repeats):
        t, a = _best(lambda: _ours(folder), 1)
        t_ours = min(t_ours, t)
        t, b = _best(lambda: _sitk(folder), 1)
        t_sitk = min(t_sitk, t)
    assert a is not None and b is not None
    # SimpleITK orders slices by position too, but along the normal's sign; align before comparing
    same = a.shape == b.shape and (np.array_equal(a, b) or np.array_equal(a, b[::-1]))
    n = a.shape[0]
    return [
        {"benchmark": f"load {label} 512x512x{n}", "tool": "vertfrac", "seconds": round(t_ours, 3),
         "rate": f"{n / t_ours:.0f} slices/s", "note": f"identical to SimpleITK: {same}"},
        {"benchmark": f"load {label} 512x512x{n}", "tool": "SimpleITK 2.5.7 ImageSeriesReader",
         "seconds": round(t_sitk, 3), "rate": f"{n / t_sitk:.0f} slices/s",
         "note": f"vertfrac speed-up x{t_sitk / t_ours:.2f}"},
    ]


def bench_index(root: Path, n_series: int = 100, per_series: int = 100) -> list[dict[str, object]]:
    from vertfrac_core.dicom.index import build_index

    if not root.exists():
        for s in range(n_series):
            write_series(root / f"s{s:03d}", per_series, size=32, seed=s)
    best, result = _best(lambda: build_index(str(root), secret=b"bench"), 2)
    n = len(result.headers)  # type: ignore[attr-defined]
    return [{"benchmark": f"index {n} local files (32x32 CT slices)", "tool": "vertfrac",
             "seconds": round(best, 3), "rate": f"{n / best:.0f} files/s",
             "note": f"{len(result.series)} series found, threads=8"}]  # type: ignore[attr-defined]


_MEMORY_PROBE = """
import resource, sys, numpy as np
from vertfrac_core.dicom.load import load_dicom
import vertfrac_core.dicom.index, pydicom.pixels
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
v = load_dicom(sys.argv[1])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base * 1024, peak * 1024, v.hu.nbytes)
"""


def bench_memory(folder: Path) -> list[dict[str, object]]:
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(folder)], capture_output=True,
                         text=True, check=True).stdout.split()
    base, peak, nbytes = (int(x) for x in out)
    ratio = (peak - base) / nbytes
    return [{"benchmark": "memory: load 512x512x1000 uncompressed", "tool": "vertfrac",
             "seconds": "", "rate": f"{(peak - base) / 2**20:.0f} MiB above baseline",
             "note": f"{ratio:.2f} x the int16 volume ({nbytes / 2**20:.0f} MiB)"}]


def write_results(rows: list[dict[str, object]], folder: Path = RESULTS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cols = ["benchmark", "tool", "seconds", "rate", "note"]
    with open(folder / "ingest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    lines = [f"# DICOM ingest benchmark ({dt.date.today().isoformat()}, {machine})", "",
             "Generated by `python -m benchmarks.bench_ingest`; same files, same process, "
             "best of the runs, page cache warm for both tools.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    (folder / "ingest.md").write_text("\n".join(lines) + "\n")


def main(repeats: int = 3, workdir: str | None = None) -> list[dict[str, object]]:
    """Run every ingest benchmark; returns the rows and writes benchmarks/results/ingest.*."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        rows: list[dict[str, object]] = []
        write_series(root / "raw400", 400)
        rows += bench_load(root / "raw400", "uncompressed", repeats)
        write_series(root / "j2k400", 400, j2k=True)
        rows += bench_load(root / "j2k400", "JPEG 2000 lossless", repeats)
        rows += bench_index(root / "index10k")
        write_series(root / "raw1000", 1000)
        rows += bench_memory(root / "raw1000")
    write_results(rows)
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
