"""Fast synthetic archives for the pipeline tests: the phantom archive writer with a stub renderer.

``stub_render`` (as in ``tests/phantom/test_archive.py``) draws a coarse grid with a 300 HU box
around the spinal column, so studies write in milliseconds while keeping the archive logic (series
mix, PACS defects, ground truth) real.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from vertfrac_core.phantom.acquisition import Acquisition, grid_for
from vertfrac_core.phantom.archive import ArchiveSettings, ArchiveSummary, write_archive
from vertfrac_core.phantom.series_plan import SeriesMix
from vertfrac_core.phantom.spine import Phantom
from vertfrac_core.volume import Volume


def stub_render(phantom: Phantom, acq: Acquisition, seed: int) -> Volume:
    coarse = replace(acq, matrix=48, pixel_spacing_mm=acq.pixel_spacing_mm * acq.matrix / 48,
                     slice_spacing_mm=4.5, slice_thickness_mm=4.5)
    grid = grid_for(coarse)
    hu = np.full(grid.shape, -1000.0, dtype=np.float32)
    x0, y0 = float(np.median(phantom.curve_lps[:, 0])), float(np.median(phantom.curve_lps[:, 1]))
    box = grid.box(np.array([x0 - 20, y0 - 20, -1e4]), np.array([x0 + 20, y0 + 20, 1e4]))
    if box is not None:
        hu[box] = 300.0
    hu += np.random.default_rng(seed).normal(0, 5, hu.shape).astype(np.float32)
    return Volume(hu=hu, affine_lps=grid.affine_lps)


#: uncompressed files only: the stub's small images are below JPEG 2000's size limit, and
#: encoding is what makes archives slow to write; decoders are tested in tests/dicom
UNCOMPRESSED = SeriesMix(explicit_le=1.0, rle_lossless=0.0, j2k_lossless=0.0)


def stub_archive(url: str, patients: int, seed: int = 11, *, truth_url: str | None = None,
                 storage_options: dict[str, Any] | None = None, **kw: Any) -> ArchiveSummary:
    kw.setdefault("mix", UNCOMPRESSED)
    settings = ArchiveSettings(patients=patients, seed=seed, profile="small", overwrite=True, **kw)
    return write_archive(url, settings, truth_url=truth_url, storage_options=storage_options,
                         renderer=stub_render)
