"""The screening pipeline at archive scale (issue 6): Prefect + Dask orchestration, not the models.

(a) A second run over an unchanged archive of 1,000 small studies processes nothing and takes
    under 30 s: timed in the same process (Prefect's embedded API already up) and as a fresh
    ``vertfrac screen`` process (imports, API start-up and Dask cluster included).
(b) Throughput (scans/min) with 1 and 2 Dask worker processes.
(c) Orchestration overhead of Prefect + Dask against calling the analyser in a loop, 20 scans,
    one worker process (on every core) against one loop (process defaults), target 10 % or less.

Studies are tiny valid CT series written directly with pydicom (``STUDY_SLICES`` slices of
``MATRIX`` pixels, 4 mm apart, a 300 HU column in air), cheap to write and to load, so (a) and
(b) measure orchestration. They are analysed by :func:`stand_in_analyze`, which spends
``compute_s`` of CPU per scan instead of running networks; (c) uses the real analyser
(``vertfrac_core.analyze``) on phantom CTs when its weights are installed, else the stand-in with
a per-scan cost like the real one's, and the table says which.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import REPO, machine, write_table

log = logging.getLogger(__name__)

STUDY_SLICES, MATRIX, SLICE_MM, PIXEL_MM = 10, 32, 4.0, 12.5  # 40 mm coverage, 400 mm FOV
STAND_IN = {"analyze": "benchmarks.bench_pipeline:stand_in_analyze",
            "load_models": "benchmarks.bench_pipeline:stand_in_models"}
WEIGHTS = REPO / "vertfrac_core" / "weights"


# ---- the stand-in analyser (runs on the Dask workers) ----

@dataclass(frozen=True)
class StandInModels:
    version: str
    compute_s: float


def stand_in_models(device: str = "cpu", *, version: str = "stand-in-1", compute_s: float = 0.0) -> StandInModels:
    return StandInModels(version, compute_s)


def stand_in_analyze(volume: Any, *, source: str, models: StandInModels) -> Any:
    """One normal L1 at the volume centre after ``compute_s`` of busy CPU (numpy matmuls)."""
    from vertfrac_core.result import ScanResult, ScanStatus, VertebraResult, density_flag

    t0 = time.perf_counter()
    x = np.random.default_rng(0).random((96, 96))
    while time.perf_counter() - t0 < models.compute_s:
        x = np.tanh(x @ x.T / 96.0)
    hu = np.asarray(volume.hu)
    c = volume.voxel_to_lps(np.array([[s / 2 for s in hu.shape[::-1]]]))[0]
    kps = [[float(c[0]), float(c[1] + dy), float(c[2] + dz)] for dy in (-12, 0, 12) for dz in (12, -12)]
    bone = float(np.median(hu[hu > 200])) if (hu > 200).any() else 0.0
    v = VertebraResult(level="L1", level_confidence=0.9, score=0.9, center_lps=[float(a) for a in c],
                       keypoints_lps=kps, ha_mm=24.0, hm_mm=22.0, hp_mm=25.0, height_loss=0.04,
                       grade=0, type="normal", trabecular_hu=bone)
    return ScanResult(source=source, status=ScanStatus.OK, model_version=models.version,
                      vertebrae=[v], l1_hu=bone, l1_hu_level="L1", density_flag=density_flag(bone),
                      max_grade=0, timings_s={"analyze": round(time.perf_counter() - t0, 4)})


# ---- tiny archives ----

def _write_study(root: Path, k: int) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    study, series, frame = (generate_uid(entropy_srcs=[f"bench-{k}-{w}"]) for w in "srf")
    img = np.full((MATRIX, MATRIX), -1000, np.int16)
    img[12:20, 12:20] = 300  # the column: 100 mm square of bone
    folder = root / f"study{k:04d}" / "ct"
    folder.mkdir(parents=True, exist_ok=True)
    for z in range(STUDY_SLICES):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[f"bench-{k}-i{z}"])
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.ImageType, ds.Manufacturer = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"], "BENCH"
        ds.PatientID, ds.PatientSex, ds.PatientAge = f"P{k:05d}", "FM"[k % 2], f"{40 + k % 50:03d}Y"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyDate, ds.StudyTime, ds.SeriesNumber, ds.InstanceNumber = "20240101", "101500", 2, z + 1
        ds.ImagePositionPatient = [-200.0, -200.0, -SLICE_MM * z]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [PIXEL_MM, PIXEL_MM], SLICE_MM
        ds.ReconstructionDiameter, ds.ConvolutionKernel = MATRIX * PIXEL_MM, "B30f"
        ds.Rows = ds.Columns = MATRIX
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = img.tobytes()
        ds.save_as(folder / f"{z:03d}.dcm", enforce_file_format=True)


def tiny_archive(root: Path, n_studies: int) -> Path:
    """``n_studies`` one-series CT studies under ``root`` (written in a thread pool)."""
    root.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda k: _write_study(root, k), range(n_studies)))
    return root


def _phantom_archive(root: Path, n_studies: int) -> Path:
    """``n_studies`` rendered phantom CT studies (for the real analyser)."""
    from vertfrac_core.phantom.archive import ArchiveSettings, write_archive
    from vertfrac_core.phantom.series_plan import SeriesMix

    settings = ArchiveSettings(patients=n_studies, seed=41, profile="small", overwrite=True,
                               mix=SeriesMix(explicit_le=1.0, rle_lossless=0.0, j2k_lossless=0.0))
    write_archive(str(root), settings)
    return root


# ---- measurements ----

def _screen(source: Path, dest: Path, **kw: Any) -> tuple[float, Any]:
    from flows.screen import screen_flow

    t = time.perf_counter()
    summary = screen_flow(str(source), str(dest), run_date=dt.date(2026, 1, 1), **kw)
    return time.perf_counter() - t, summary


def _python(code: str, what: str, timeout: float) -> subprocess.CompletedProcess:
    """``python -c code`` in a fresh process at the repository root; raises if it fails."""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed ({out.returncode}): {out.stderr[-2000:]}")
    return out


def _screen_process(source: Path, dest: Path, workers: int) -> float:
    """A fresh ``vertfrac screen`` with the stand-in: what a nightly run costs, start-up included."""
    code = ("import sys; from vertfrac_core.cli import app; sys.argv = ['vertfrac', 'screen', "
            f"{str(source)!r}, '--out', {str(dest)!r}, '--workers', '{workers}', '--analyzer', "
            f"{STAND_IN['analyze']!r}, '--models', {STAND_IN['load_models']!r}]; app()")
    t = time.perf_counter()
    out = _python(code, "vertfrac screen", timeout=600)
    wall = time.perf_counter() - t
    if "screened 0 " not in out.stdout:
        raise RuntimeError(f"the unchanged rerun screened something:\n{out.stdout[-2000:]}")
    return wall


def _loop(source: Path, spec: Any, pictures: Path, dest: Path) -> dict[str, float]:
    """The analyser called in a loop, as a script without Prefect or Dask would: index and
    select, load the models once, then load + analyse (picture included, as in the flow) each
    selected series, then write the same tables through the same quality gates as the flow
    (``series_index``, then ``scans`` and ``vertebrae``). Seconds per part, and the sum of the
    per-scan totals."""
    from vertfrac_core.batches import TableStore, new_batch_id
    from vertfrac_core.dicom.index import build_index
    from vertfrac_core.dicom.keys import DEMO_SECRET
    from vertfrac_core.quality import gate_and_publish
    from vertfrac_core.screening import ScreenSettings, loaded, screen_study
    from vertfrac_core.tables import outcome_tables
    from vertfrac_core.worklist import work_items

    t = time.perf_counter()
    index = build_index(str(source), secret=DEMO_SECRET)
    items = work_items(index)
    t_index = time.perf_counter() - t
    t = time.perf_counter()
    loaded(spec)
    t_models = time.perf_counter() - t
    settings = ScreenSettings(images=TableStore(str(pictures)))
    t, per_scan, outcomes = time.perf_counter(), 0.0, []
    for it in items:
        outcomes.append(screen_study(it, spec, settings=settings))
        per_scan += outcomes[-1].result.timings_s["total"]
    t_analyse = time.perf_counter() - t
    t = time.perf_counter()
    store, day, run_id = TableStore(str(dest)), dt.date.today(), "loop"
    batch = new_batch_id(day)
    assert gate_and_publish(store, {"series_index": index.table()}, batch_id=batch, run_id=run_id,
                            run_date=day).passed
    batch = new_batch_id(day)
    tables = outcome_tables(outcomes, run_id=run_id, batch_id=batch, redact=index.redactor().text)
    assert gate_and_publish(store, tables, batch_id=batch, run_id=run_id, run_date=day).passed
    return {"index": t_index, "models": t_models, "analyse": t_analyse,
            "tables": time.perf_counter() - t, "per_scan": per_scan, "n": len(items)}


def _per_scan_s(dest: Path) -> float:
    """Sum of the per-scan totals the workers recorded in the scans table."""
    from vertfrac_core.batches import TableStore, read_table

    return sum(dict(m)["total"] for m in read_table(TableStore(str(dest)), "scans", ["timings_s"])
               .column("timings_s").to_pylist())


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main(n_studies: int = 1000, n_throughput: int = 100, throughput_compute_s: float = 0.25,
         n_overhead: int = 20, stand_in_compute_s: float = 4.0) -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    rows: list[list[object]] = []
    notes = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        base = Path(tmp)
        # (a) unchanged rerun over 1,000 small studies
        t = time.perf_counter()
        archive = tiny_archive(base / "archive", n_studies)
        log.info("wrote %d studies in %.1f s", n_studies, time.perf_counter() - t)
        dest = base / "tables"
        first_s, first = _screen(archive, dest, workers=2, **STAND_IN)
        assert first.screened == n_studies, first.describe()
        rows.append([f"first run, {n_studies:,} studies, 2 workers", n_studies, f"{first_s:.1f}",
                     f"{60 * n_studies / first_s:.0f}", _load()])
        again_s, again = _screen(archive, dest, workers=2, **STAND_IN)
        assert again.screened == 0 and again.objects_read == 0, again.describe()
        rows.append(["unchanged rerun, same process", 0, f"{again_s:.1f}", "", _load()])
        proc_s = _screen_process(archive, dest, workers=2)
        rows.append(["unchanged rerun, fresh `vertfrac screen` process", 0, f"{proc_s:.1f}", "", _load()])
        notes.append(f"(a) {n_studies} studies of {STUDY_SLICES} slices ({n_studies * STUDY_SLICES} "
                     f"files); the reruns read no header (object manifest) and screen nothing. "
                     f"Target: under 30 s.")
        # (b) throughput with 1 and 2 worker processes
        sub = tiny_archive(base / "throughput", n_throughput)
        opts = {"compute_s": throughput_compute_s}
        for workers in (1, 2):
            wall, s = _screen(sub, base / f"tp{workers}", workers=workers, analyzer_options=opts,
                              **STAND_IN)
            assert s.screened == n_throughput, s.describe()
            rows.append([f"throughput, {workers} worker process(es)", n_throughput, f"{wall:.1f}",
                         f"{60 * n_throughput / wall:.0f}", _load()])
        notes.append(f"(b) {n_throughput} tiny studies, stand-in analyser busy "
                     f"{throughput_compute_s} s of CPU per scan; whole flow wall time (index, "
                     f"quality gates, Parquet writes, LocalCluster start included).")
        # (c) orchestration overhead at 20 scans
        rows += _overhead(base, n_overhead, stand_in_compute_s, notes)
    write_table("pipeline", ["measurement", "scans", "wall s", "scans/min", "load avg 1/5/15 min"],
                rows, notes=f"Machine: {machine()} (shared: see the load average of each row).\n\n"
                            + "\n\n".join(notes))


def _loop_process(source: Path, spec: Any, base: Path, rep: int, passes: int) -> list[dict[str, float]]:
    """:func:`_loop` in a fresh Python process, as a nightly script would run (its imports of the
    analysis code and its model load included, like the flow's fresh Dask worker): the seconds
    of each part of each pass (a second pass sees the same scans again in a warm process)."""
    import dataclasses
    import json

    args = json.dumps({"source": str(source), "base": str(base), "rep": rep, "passes": passes,
                       "spec": dataclasses.asdict(spec)})
    out = _python(f"from benchmarks.bench_pipeline import _loop_main; _loop_main({args!r})",
                  "the loop", timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _loop_main(args_json: str) -> None:
    """Entry of :func:`_loop_process`. What the benchmark's flow process holds already (the
    index, tables and quality-gate code and their libraries: pydicom, pyarrow,
    great-expectations) is imported before the clock starts; the analysis code (torch, the
    models, matplotlib) after, as the flow's fresh worker process imports it."""
    import json

    import great_expectations  # noqa: F401

    import vertfrac_core.batches
    import vertfrac_core.dicom.index
    import vertfrac_core.quality
    import vertfrac_core.tables  # noqa: F401
    import vertfrac_core.worklist  # noqa: F401

    t0 = time.perf_counter()
    from vertfrac_core.screening import AnalyzerSpec

    a = json.loads(args_json)
    spec = AnalyzerSpec(**{**a["spec"], "options": tuple(tuple(o) for o in a["spec"]["options"])})
    base, passes = Path(a["base"]), []
    for p in range(a["passes"]):
        loop = _loop(Path(a["source"]), spec, base / f"loop_pictures{a['rep']}_{p}",
                     base / f"loop_tables{a['rep']}_{p}")
        loop["wall"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        passes.append(loop)
    print(json.dumps(passes))


def _overhead(base: Path, n: int, stand_in_compute_s: float, notes: list[str],
              repeats: int = 3) -> list[list[object]]:
    from vertfrac_core.screening import AnalyzerSpec

    real = (WEIGHTS / "localizer.pt").exists() and (WEIGHTS / "detector.pt").exists()
    if real:
        source = _phantom_archive(base / "overhead", n)
        spec, kw = AnalyzerSpec(), {}
        what = "the real analyser (vertfrac_core.analyze with load_models(), CPU) on rendered phantom CTs"
    else:
        source = tiny_archive(base / "overhead", n)
        opts = {"compute_s": stand_in_compute_s}
        spec = AnalyzerSpec(**STAND_IN, options=tuple(opts.items()))
        kw = {**STAND_IN, "analyzer_options": opts}
        what = (f"the STAND-IN analyser ({stand_in_compute_s} s of CPU per scan, about the real "
                f"analyser's CPU target), since vertfrac_core/weights/*.pt were not installed")
    tag = "real" if real else "stand-in"
    rows: list[list[object]] = []
    loops: list[float] = []
    warm_loops: list[float] = []
    flows: dict[int, list[float]] = {1: [], 2: []}
    n_items = 0

    def run_loop(rep: int) -> None:
        nonlocal n_items
        passes = _loop_process(source, spec, base, rep, passes=2 if rep == 0 else 1)
        for p, loop in enumerate(passes):
            (loops if p == 0 else warm_loops).append(loop["wall"])
            n_items = int(loop["n"])
            kind = "fresh process" if p == 0 else "second pass over the same scans, same process"
            extra = (f"imports and model load {loop['wall'] - loop['index'] - loop['analyse'] - loop['tables']:.1f}"
                     if p == 0 else f"models {loop['models']:.1f}")
            rows.append([f"loop {rep + 1} ({kind}; {tag}): index {loop['index']:.1f} + {extra} + "
                         f"load, analyse and picture {loop['analyse']:.1f} + tables through the "
                         f"gates {loop['tables']:.1f} s; per-scan sum {loop['per_scan']:.1f} s",
                         n_items, f"{loop['wall']:.1f}", f"{60 * n_items / loop['wall']:.1f}", _load()])

    def run_flow(workers: int, rep: int) -> None:
        dest = base / f"overhead_tables{workers}_{rep}"
        flow_s, s = _screen(source, dest, workers=workers, **kw)
        assert s.screened == n_items, s.describe()
        per_scan = _per_scan_s(dest)
        flows[workers].append(flow_s)
        rows.append([f"screen flow {rep + 1}, {workers} worker process(es) ({tag}); per-scan sum "
                     f"{per_scan:.1f} s, outside the scans about {flow_s - per_scan / workers:.1f} s",
                     n_items, f"{flow_s:.1f}", f"{60 * n_items / flow_s:.1f}", _load()])

    # loop and 1-worker flow alternate, so that a slow spell of the shared machine hits both
    for rep in range(repeats):
        run_loop(rep)
        run_flow(1, rep)
    run_flow(2, 0)
    best_loop, med_loop = min(loops), float(np.median(loops))
    verdicts = []
    for workers, runs in flows.items():
        best, med = min(runs), float(np.median(runs))
        verdicts.append(f"{workers} worker(s): best flow {best:.1f} s, {100 * (best / best_loop - 1):+.1f} % "
                        f"against the best loop ({best_loop:.1f} s); median flow {med:.1f} s, "
                        f"{100 * (med / med_loop - 1):+.1f} % against the median loop ({med_loop:.1f} s)")
    warm = (f" A second pass of the loop over the same 20 scans in its warm process took "
            f"{warm_loops[0]:.1f} s (the best 1-worker flow is {100 * (min(flows[1]) / warm_loops[0] - 1):+.1f} % "
            f"against it): a process that has analysed these very scans before is faster than any "
            f"fresh one, which is why the loop is timed in a fresh process." if warm_loops else "")
    rows.append(["verdict: " + "; ".join(verdicts), n_items, "", "", _load()])
    notes.append(f"(c) {n_items} scans with {what}. Loop: what a nightly script without Prefect "
                 f"or Dask does, timed in a fresh Python process from before its first import of "
                 f"the analysis code (what the flow process holds already: the index, table and "
                 f"quality-gate code with pydicom, pyarrow and great-expectations, is imported "
                 f"before the clock starts): index and select, load the models once, then "
                 f"`screen_study` (load, analyse, picture) per selected series, numpy and torch on "
                 f"their defaults ({_torch_default_threads()} threads here), then the same tables "
                 f"as the flow through the same quality gates (`quality.gate_and_publish`: "
                 f"series_index, then scans and vertebrae), so that the difference is what Prefect "
                 f"and Dask cost (the loop leaves out only the flow's listing and object "
                 f"manifest). Flow: "
                 f"`screen_flow`, everything included (listing, index, LocalCluster start, a fresh "
                 f"worker process importing the analysis code, loading the models, "
                 f"quality gates, Parquet), Prefect's embedded API already up and Prefect imported "
                 f"(a deployment talks to a running server). A local worker computes "
                 f"on cores / workers threads (tasks/cluster.py), so 1 worker process has the "
                 f"loop's parallelism; 2 workers (the default) run 1 thread each. The "
                 f"loop and the 1-worker flow run {repeats} times, alternately (this shared machine "
                 f"drifts by 10-20 % within minutes): " + "; ".join(verdicts) + "." + warm
                 + " Target: 10 % or less.")
    return rows


def _torch_default_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
