"""Phantom generation speed: one 512x512x400 series (0.78 x 0.78 x 1.25 mm) rendered and written as
DICOM, and one coarse training sample. Results: benchmarks/results/phantom.md.

Targets (issue 2): series generated and written in under 10 s, coarse sample under 0.5 s, on the
2-core CI machine.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time

import numpy as np

from benchmarks._common import machine, write_table


def _series_acq(ph):
    from vertfrac_core.phantom.acquisition import FieldOfView, sample_acquisition

    acq = sample_acquisition(ph, np.random.default_rng(0), "full", fov=FieldOfView.CAP)
    top = float(ph.vertebra("T6").origin_lps[2])
    return dataclasses.replace(acq, pixel_spacing_mm=0.78, slice_thickness_mm=1.25,
                               slice_spacing_mm=1.25, z_top_mm=top, z_bottom_mm=top - 399 * 1.25,
                               metal=False)


def main(repeats: int = 3) -> None:
    import torch

    from vertfrac_core.phantom.archive import ArchiveSettings  # noqa: F401 - warm imports
    from vertfrac_core.phantom.dicom_writer import (
        SeriesHeader,
        TransferSyntax,
        derive_uid,
        write_ct_series,
    )
    from vertfrac_core.phantom.population import sample_patient
    from vertfrac_core.phantom.render import render_coarse, render_ct
    from vertfrac_core.phantom.spine import build_phantom

    torch.set_num_threads(2)
    rows = []
    for ts in (TransferSyntax.EXPLICIT_LE, TransferSyntax.RLE_LOSSLESS, TransferSyntax.J2K_LOSSLESS):
        times = []
        for r in range(repeats if ts == TransferSyntax.EXPLICIT_LE else 1):
            t0 = time.perf_counter()
            spec = sample_patient(100 + r)
            ph = build_phantom(spec)
            acq = _series_acq(ph)
            vol = render_ct(ph, acq, seed=r)
            t1 = time.perf_counter()
            header = SeriesHeader(
                patient_id=spec.patient_id, patient_name=spec.patient_name, birth_date=spec.birth_date,
                sex=spec.sex, age_years=spec.age, study_date=spec.study_date, study_time="101500",
                study_uid=derive_uid("bench", r), series_uid=derive_uid("bench", r, "s"),
                frame_of_reference_uid=derive_uid("bench", r, "f"), series_number=2,
                series_description="bench", accession_number="A1", manufacturer="SIEMENS",
                model="bench", kernel="B30f", kvp=120, contrast_agent=None,
                slice_thickness_mm=acq.slice_thickness_mm,
            )
            with tempfile.TemporaryDirectory() as tmp:
                paths = write_ct_series(vol, header, tmp, ts)
            t2 = time.perf_counter()
            times.append((t1 - t0, t2 - t1, t2 - t0))
            assert vol.shape == (400, 512, 512) and len(paths) == 400
        t = np.median(np.array(times), axis=0)
        rows.append([f"512x512x400 series, {ts.name}", f"{t[0]:.2f}", f"{t[1]:.2f}", f"{t[2]:.2f}",
                     "< 10 s" if ts == TransferSyntax.EXPLICIT_LE else "(info)", len(times)])
    ctimes = []
    for r in range(5):
        t0 = time.perf_counter()
        ph = build_phantom(sample_patient(200 + r))
        z = [v.origin_lps[2] for v in ph.vertebrae]
        render_coarse(ph, 3.5, (min(z) - 40, max(z) + 20), seed=r)
        ctimes.append(time.perf_counter() - t0)
    rows.append(["coarse training sample (3.5 mm, whole column)", f"{np.median(ctimes):.2f}", "-",
                 f"{np.median(ctimes):.2f}", "< 0.5 s", len(ctimes)])
    write_table(
        "phantom", ["case", "generate s", "encode+write s", "total s", "target", "runs (median)"], rows,
        notes=f"Machine: {machine()}. Generate = sample patient + geometry + render (float32 HU); "
              "write = DICOM encode + write to a local temp folder, one file per slice.",
    )


if __name__ == "__main__":
    main()
