"""End-to-end `analyze` speed: a 512x512x400 phantom DICOM series (0.78 x 0.78 x 1.25 mm),
loading and the PNG included, with a per-stage breakdown (issue 5 target: 5 s on 2 CPU cores).
Also the localizer's network+decoding time on the same scan (issue 4 target: 1 s).
Runs on CUDA when torch sees a GPU (`make bench-gpu` writes the GPU table)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import machine, write_table


def _write_series(tmp: Path, seed: int) -> Path:
    import dataclasses

    from benchmarks.bench_phantom import _series_acq
    from vertfrac_core.phantom.dicom_writer import (
        SeriesHeader,
        TransferSyntax,
        derive_uid,
        write_ct_series,
    )
    from vertfrac_core.phantom.population import sample_patient
    from vertfrac_core.phantom.render import render_ct
    from vertfrac_core.phantom.spine import build_phantom

    spec = sample_patient(seed)
    ph = build_phantom(spec)
    acq = dataclasses.replace(_series_acq(ph), z_top_mm=float(ph.vertebra("T9").origin_lps[2]))
    acq = dataclasses.replace(acq, z_bottom_mm=acq.z_top_mm - 399 * 1.25)
    vol = render_ct(ph, acq, seed=seed)
    header = SeriesHeader(
        patient_id=spec.patient_id, patient_name=spec.patient_name, birth_date=spec.birth_date,
        sex=spec.sex, age_years=spec.age, study_date=spec.study_date, study_time="101500",
        study_uid=derive_uid("bench-a", seed), series_uid=derive_uid("bench-a", seed, "s"),
        frame_of_reference_uid=derive_uid("bench-a", seed, "f"), series_number=2,
        series_description="bench", accession_number="A1", manufacturer="SIEMENS", model="bench",
        kernel="B30f", kvp=120, contrast_agent=None, slice_thickness_mm=acq.slice_thickness_mm)
    folder = tmp / f"series_{seed}"
    write_ct_series(vol, header, str(folder), TransferSyntax.EXPLICIT_LE)
    return folder


def agreement(a, b) -> str:
    """How far two results of the same scan (say CUDA and CPU) agree: same vertebrae, levels and
    grades, and the largest keypoint and height differences (mm)."""
    va, vb = a.vertebrae, b.vertebrae
    if a.status != b.status or len(va) != len(vb):
        return (f"DIFFERENT: {a.status.value} with {len(va)} vertebrae against {b.status.value} "
                f"with {len(vb)}")
    same = all(x.level == y.level and x.grade == y.grade for x, y in zip(va, vb, strict=True))
    kp = max((float(np.abs(np.subtract(x.keypoints_lps, y.keypoints_lps)).max()) for x, y in zip(va, vb, strict=True)),
             default=0.0)
    h = max((abs(getattr(x, f) - getattr(y, f)) for x, y in zip(va, vb, strict=True)
             for f in ("ha_mm", "hm_mm", "hp_mm")), default=0.0)
    return (f"{len(va)} vertebrae, levels and grades {'identical' if same else 'DIFFERENT'}, largest keypoint "
            f"difference {kp:.3f} mm, largest height difference {h:.3f} mm")


def main(repeats: int = 3, device: str | None = None, table: str = "analyze") -> None:
    import torch

    from vertfrac_core.analyze import analyze_path, load_any, load_models

    torch.set_num_threads(2)
    models = load_models(device)
    rows, loc_times = [], []
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        folders = [_write_series(Path(tmp), 300 + r) for r in range(repeats)]
        analyze_path(str(folders[0]), Path(tmp) / "warm", models)  # warm-up (threads, caches)
        for r, folder in enumerate(folders):
            t = time.perf_counter()
            res = analyze_path(str(folder), Path(tmp) / f"out{r}", models)
            total = time.perf_counter() - t
            vol = load_any(str(folder))
            t = time.perf_counter()
            models.localizer(vol)
            loc_times.append(time.perf_counter() - t)
            st = res.timings_s
            rows.append([f"run {r + 1}", res.status.value, len(res.vertebrae), f"{total:.2f}"]
                        + [f"{st.get(k, float('nan')):.2f}" for k in
                           ("load", "localize", "reformat", "detect", "morphometry", "density", "render")])
            if r == 0:
                first = res
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        check = ""
        if dev.startswith("cuda") and first is not None:  # the same scan on the CPU path: do they agree?
            on_cpu = analyze_path(str(folders[0]), Path(tmp) / "cpu", load_models("cpu"))
            check = f" Run 1 on CUDA against the CPU path: {agreement(first, on_cpu)}."
            dev = f"{dev} ({torch.cuda.get_device_name(dev)}, torch {torch.__version__})"
    rows.append(["median", "", "", f"{np.median([float(r[3]) for r in rows]):.2f}"] + [""] * 7)
    write_table(table, ["run", "status", "vertebrae", "total s", "load", "localize", "reformat",
                        "detect", "morphometry", "density", "render"], rows,
                notes=f"Machine: {machine()}, device {dev}, torch CPU threads 2. One 512x512x400 uncompressed phantom DICOM "
                      f"series per run, `analyze_path` end to end (result.json and PNG written). "
                      f"Localizer alone (network, decoding and centring; loading excluded): median "
                      f"{np.median(loc_times):.2f} s over {len(loc_times)} scans.{check}")


if __name__ == "__main__":
    main(device=sys.argv[1] if len(sys.argv) > 1 else None,
         table="analyze_gpu" if len(sys.argv) > 1 and sys.argv[1].startswith("cuda") else "analyze")
