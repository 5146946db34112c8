"""Fixtures shared across the test tree.

``stub_render`` stands in for :func:`vertfrac_core.phantom.render.render_ct` when a test
exercises archive logic (layout, headers, defects, ingest), not the renderer: a coarse
48x48 grid with 4.5 mm slices that keeps the acquisition's field of view (so reconstruction
diameters and centres in the headers are those of the real protocol), -1000 HU air, a 300 HU
box around the spinal column and mild noise. A module-level function, so it pickles for
``ArchiveSettings(workers > 1)``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vertfrac_core.phantom.acquisition import Acquisition, grid_for
from vertfrac_core.phantom.spine import Phantom
from vertfrac_core.volume import Volume


def stub_render(phantom: Phantom, acq: Acquisition, seed: int) -> Volume:
    """A coarse stand-in for render_ct: -1000 HU air, a 300 HU box around the column, noise."""
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


@pytest.fixture(scope="session")
def stub_renderer():  # noqa: ANN201 - returns the Renderer callable above
    """The fast stand-in renderer (see the module docstring)."""
    return stub_render
