"""DICOM ingest benchmarks, run side by side in one process.

1. Load a 512x512x400 series, uncompressed and JPEG 2000 lossless: ``vertfrac_core.dicom``
   (index + assemble, with its default settings: a new decoding pool per load) vs SimpleITK
   ``ImageSeriesReader`` (GDCM file-name sort + read). One untimed warm-up read each (page
   cache, imports), then ``repeats`` timed runs, alternating; the median and the minimum of
   each are reported, with the 1-minute load average around the runs (other jobs on a shared
   machine slow both tools, unevenly); the arrays are compared.
2. Index 10,000 small local DICOM files (100 series x 100 slices of 32x32): files per second.
3. Memory: peak resident memory of loading a 512x512x1000 uncompressed series, in a fresh
   subprocess, relative to the volume's int16 size.

Writes ``benchmarks/results/ingest.md`` and ``ingest.csv``. ``python -m benchmarks.bench_ingest``
runs everything; ``python -m benchmarks.bench_ingest j2k raw`` reruns only those parts (``raw``,
``j2k``, ``index``, ``memory``) and keeps the other rows of the existing results.
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
        ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
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


def _load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _ours(folder: Path) -> tuple[np.ndarray, str]:
    from vertfrac_core.dicom.load import load_dicom

    vol = load_dicom(str(folder))
    return vol.hu, str(vol.meta["decoded_with"])


def _sitk(folder: Path) -> np.ndarray:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute())


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_load(folder: Path, label: str, repeats: int) -> list[dict[str, object]]:
    """Warm up both readers once, then alternate ours / SimpleITK ``repeats`` times; median
    and minimum time of each, load average before and after; compare the arrays."""
    import SimpleITK as sitk

    _ours(folder), _sitk(folder)  # warm-up: page cache and imports, untimed
    load_before = _load_average()
    t_ours: list[float] = []
    t_sitk: list[float] = []
    a = b = None
    how = ""
    for _ in range(repeats):
        t, (a, how) = _timed(lambda: _ours(folder))  # type: ignore[misc]
        t_ours.append(t)
        t, b = _timed(lambda: _sitk(folder))
        t_sitk.append(t)
    load_after = _load_average()
    assert a is not None and b is not None
    # SimpleITK orders slices by position too, but along the normal's sign; align before comparing
    same = a.shape == b.shape and (np.array_equal(a, b) or np.array_equal(a, b[::-1]))
    n = a.shape[0]
    m_ours, m_sitk = float(np.median(t_ours)), float(np.median(t_sitk))
    load = f"load average {load_before:.2f} -> {load_after:.2f}"
    return [
        {"benchmark": f"load {label} 512x512x{n}", "tool": "vertfrac", "seconds": round(m_ours, 3),
         "rate": f"{n / m_ours:.0f} slices/s",
         "note": f"median of {repeats} (min {min(t_ours):.2f} s); identical to SimpleITK: {same}; "
                 f"decoded with {how}; {load}"},
        {"benchmark": f"load {label} 512x512x{n}",
         "tool": f"SimpleITK {sitk.Version.VersionString()} ImageSeriesReader",
         "seconds": round(m_sitk, 3), "rate": f"{n / m_sitk:.0f} slices/s",
         "note": f"median of {repeats} (min {min(t_sitk):.2f} s); vertfrac speed-up "
                 f"x{m_sitk / m_ours:.2f} (median), x{min(t_sitk) / min(t_ours):.2f} (min)"},
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


def _merge(rows: list[dict[str, object]], folder: Path) -> list[dict[str, object]]:
    """Existing rows of ``ingest.csv`` with those of the same benchmark replaced by ``rows``."""
    path = folder / "ingest.csv"
    if not path.exists():
        return rows
    with open(path, newline="") as fh:
        old: list[dict[str, object]] = list(csv.DictReader(fh))
    fresh = {r["benchmark"] for r in rows}
    kept = [r for r in old if r["benchmark"] not in fresh]
    order = [r["benchmark"] for r in old]
    merged = kept + rows
    return sorted(merged, key=lambda r: order.index(r["benchmark"]) if r["benchmark"] in order else len(order))


def write_results(rows: list[dict[str, object]], folder: Path = RESULTS, notes: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cols = ["benchmark", "tool", "seconds", "rate", "note"]
    with open(folder / "ingest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    lines = [f"# DICOM ingest benchmark ({dt.date.today().isoformat()}, {machine})", "",
             "Generated by `python -m benchmarks.bench_ingest`; same files, same process, page "
             "cache warm for both tools (one untimed warm-up read each); load rows: median of "
             "alternating runs.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    if notes:
        lines += ["", notes]
    (folder / "ingest.md").write_text("\n".join(lines) + "\n")


PARTS = ("raw", "j2k", "index", "memory")


def main(repeats: int = 5, workdir: str | None = None, parts: tuple[str, ...] = PARTS,
         notes: str = "") -> list[dict[str, object]]:
    """Run the ingest benchmarks in ``parts``; merge into and write benchmarks/results/ingest.*."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown benchmark parts {sorted(unknown)}; choose from {PARTS}")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        rows: list[dict[str, object]] = []
        if "raw" in parts:
            write_series(root / "raw400", 400)
            rows += bench_load(root / "raw400", "uncompressed", repeats)
        if "j2k" in parts:
            write_series(root / "j2k400", 400, j2k=True)
            rows += bench_load(root / "j2k400", "JPEG 2000 lossless", repeats)
        if "index" in parts:
            rows += bench_index(root / "index10k")
        if "memory" in parts:
            write_series(root / "raw1000", 1000)
            rows += bench_memory(root / "raw1000")
    write_results(_merge(rows, RESULTS) if set(parts) != set(PARTS) else rows, notes=notes)
    return rows


if __name__ == "__main__":
    for row in main(parts=tuple(sys.argv[1:]) or PARTS):
        print(row)
