"""Render a phantom as a CT volume: soft tissue on a coarse grid (upsampled), bones painted at full
resolution over the slice profile, an optional metal implant with streaks, and correlated noise.

:func:`render_ct` renders an :class:`~vertfrac_core.phantom.acquisition.Acquisition` (the grid a
DICOM series is written from); :func:`render_coarse` renders straight to an isotropic coarse
training grid, without DICOM.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from vertfrac_core.phantom.acquisition import Acquisition, Grid, coarse_grid, grid_for
from vertfrac_core.phantom.canvas import Canvas
from vertfrac_core.phantom.skeleton import (
    BoneMaterial,
    paint_disc,
    paint_ribs,
    paint_sacrum,
    paint_sternum_and_pelvis,
    paint_vertebra,
)
from vertfrac_core.phantom.spine import Phantom
from vertfrac_core.phantom.torso import paint_soft_tissue, torso_profile
from vertfrac_core.volume import Volume

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderSettings:
    """What the scanner adds on top of the anatomy."""

    thickness_mm: float
    edge_mm: float  # point-spread width (partial volume ramp)
    noise_hu: float
    noise_corr_mm: float  # correlation length of the noise texture
    contrast: bool
    metal: bool
    prone: bool


def _material(phantom: Phantom, rng: np.random.Generator) -> BoneMaterial:
    tex = gaussian_filter(rng.standard_normal((64, 64, 64)).astype(np.float32), 0.9, mode="wrap")
    tex /= tex.std() + 1e-6
    age = phantom.spec.age
    cortex_hu = float(np.clip(900.0 - 3.0 * (age - 30) + rng.normal(0, 40), 600.0, 1000.0))
    # the body's cortical shell (walls and endplates) varies between patients: on real CT at
    # 1-1.5 mm voxels its walls stood 130-180 HU above the trabecular bone at mid-height (VerSe
    # 005 / 006, TPTBox; 47 HU at 3 mm), where the former uniform 0.8 mm shell at 600-1000 HU
    # stood 150-320 HU above it (5th-95th percentile of straightened samples, all protocols);
    # this draw gives 60-282 HU (median 140) on the same seeds
    shell_mm = float(rng.uniform(0.4, 1.0))
    # the endplates are denser: at the middle of real 1-1.5 mm volumes they stand 151-375 HU
    # above the trabecular bone (median 320; VerSe 005 / 006, TPTBox; 40-148 HU at 3 mm), where
    # the shell alone gave 11-279 (5th-95th percentile, median 99, 40 of the tuning seeds 0-44); a layer
    # 0.4-1.2 mm deeper than the shell at 45-85 % of the cortex HU gives 38-425 (median 222)
    return BoneMaterial(
        cortex_hu=cortex_hu, cortex_mm=0.8, texture=tex,
        texture_hu=float(0.3 * max(phantom.spec.l1_hu, 60.0) + 12.0),
        shell_mm=shell_mm, shell_hu=float(cortex_hu * rng.uniform(0.6, 1.0)),
        plate_mm=float(shell_mm + rng.uniform(0.4, 1.2)), plate_hu=float(cortex_hu * rng.uniform(0.45, 0.85)),
    )


def _soft_tissue(phantom: Phantom, grid: Grid, settings: RenderSettings,
                 rng: np.random.Generator) -> np.ndarray:
    """Soft tissue painted on a coarse version of ``grid`` and upsampled onto it (linear)."""
    k, j, i = grid.shape
    px = float(abs(grid.xs[1] - grid.xs[0])) if i > 1 else 1.0
    fxy = max(1, int(round(2.4 / px)))
    dz = float(abs(grid.zs[1] - grid.zs[0])) if k > 1 else 1.0
    fz = max(1, int(round(4.5 / dz)))
    jc, ic, kc = (j - 1) // fxy + 2, (i - 1) // fxy + 2, max(2, (k - 1) // fz + 2)
    cgrid = Grid(
        xs=np.linspace(grid.xs[0], grid.xs[0] + (ic - 1) * fxy * (grid.xs[-1] - grid.xs[0]) / max(i - 1, 1), ic),
        ys=np.linspace(grid.ys[0], grid.ys[0] + (jc - 1) * fxy * (grid.ys[-1] - grid.ys[0]) / max(j - 1, 1), jc),
        zs=np.linspace(grid.zs[0], grid.zs[0] + (kc - 1) * fz * (grid.zs[-1] - grid.zs[0]) / max(k - 1, 1), kc),
        affine_lps=grid.affine_lps,
    )
    canvas = Canvas(cgrid, thickness_mm=0.0, edge_mm=2.0)
    paint_soft_tissue(canvas, phantom, torso_profile(phantom, settings.prone), settings.contrast, rng)
    # output index o samples coarse index o / f exactly: out = (n - 1) * f + 1 along each axis
    size = tuple((n - 1) * f + 1 for n, f in zip(canvas.data.shape, (fz, fxy, fxy), strict=True))
    up = upsample_linear(canvas.data, size)
    return np.ascontiguousarray(up[:k, :j, :i])


def upsample_linear(arr: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """Trilinear resize of a 3D float32 array with corners aligned (torch, multi-threaded)."""
    import torch

    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None, None]
        out = torch.nn.functional.interpolate(t, size=size, mode="trilinear", align_corners=True)
    return out[0, 0].numpy()


def render_grid(phantom: Phantom, grid: Grid, settings: RenderSettings, seed: int) -> np.ndarray:
    """HU array (K, J, I) float32 of ``phantom`` on ``grid``."""
    rng = np.random.default_rng(np.random.SeedSequence([20262, phantom.spec.seed, seed]))
    data = _soft_tissue(phantom, grid, settings, rng)
    canvas = Canvas(grid, settings.thickness_mm, settings.edge_mm, data=data)
    mat = _material(phantom, rng)
    prof = torso_profile(phantom, settings.prone)
    verts = phantom.vertebrae
    disc_hu = 95.0 - 0.4 * (phantom.spec.age - 40)
    for up, low in zip(verts[:-1], verts[1:], strict=True):
        paint_disc(canvas, up, low, disc_hu)
    for v in verts:
        paint_vertebra(canvas, v, mat)
    paint_ribs(canvas, phantom, prof, mat, cartilage_hu=90.0 + 2.5 * (phantom.spec.age - 40))
    paint_sternum_and_pelvis(canvas, phantom, prof, mat)
    paint_sacrum(canvas, phantom, mat)
    out = canvas.data
    if settings.metal:
        _metal(out, grid, phantom, rng, settings.edge_mm)
    _add_noise(out, grid, settings, rng)
    np.clip(out, -1024.0, 3071.0, out=out)
    return out


def _metal(out: np.ndarray, grid: Grid, phantom: Phantom, rng: np.random.Generator, edge: float) -> None:
    """A pair of pedicle screws in a lumbar vertebra with streak artefacts in their slices."""
    levels = [v for v in phantom.vertebrae if v.level.startswith("L")]
    v = levels[int(rng.integers(0, len(levels)))]
    canvas = Canvas(grid, 0.0, edge, data=out)
    tips = []
    for side in (-1.0, 1.0):
        a = v.to_lps(np.array([[-v.body.half_depth - 25.0, side * 22.0, 0.0]]))[0]
        b = v.to_lps(np.array([[v.body.half_depth * 0.6, side * 8.0, 0.0]]))[0]
        tips.append((a, b))
        from vertfrac_core.phantom.shapes import capsule, occupancy

        canvas.paint(np.minimum(a, b) - 8, np.maximum(a, b) + 8,
                     lambda X, Y, Z, a=a, b=b: (occupancy(capsule(X, Y, Z, a, b, 3.2), edge), np.float32(3000.0)))
    out[...] = canvas.data
    # streaks: radial cosine pattern around the screws in the slices they cross
    zc = float(v.origin_lps[2])
    ks = np.nonzero(np.abs(grid.zs - zc) < 8.0)[0]
    if ks.size == 0:
        return
    X = grid.xs[None, :].astype(np.float32)
    Y = grid.ys[:, None].astype(np.float32)
    x0, y0 = float(v.origin_lps[0]), float(v.origin_lps[1])
    r = np.sqrt((X - x0) ** 2 + (Y - y0) ** 2) + 5.0
    th = np.arctan2(Y - y0, X - x0)
    streak = (np.cos(8 * th + rng.uniform(0, 6.3)) * 0.6 + np.cos(21 * th + rng.uniform(0, 6.3)) * 0.4)
    streak = (350.0 * streak * np.exp(-r / 120.0)).astype(np.float32)
    for k in ks:
        out[k] += streak * float(np.exp(-abs(grid.zs[k] - zc) / 6.0))


def _add_noise(out: np.ndarray, grid: Grid, settings: RenderSettings, rng: np.random.Generator) -> None:
    """Correlated (coloured) noise: each slice adds a random window of a filtered noise bank."""
    if settings.noise_hu <= 0:
        return
    k, j, i = out.shape
    px = float(abs(grid.xs[1] - grid.xs[0])) if i > 1 else 1.0
    sigma = max(0.3, settings.noise_corr_mm / px)
    pad = 64
    bank = np.empty((4, j + pad, i + pad), dtype=np.float32)
    for b in range(len(bank)):
        f = gaussian_filter(rng.standard_normal((j + pad, i + pad)).astype(np.float32), sigma, mode="wrap")
        bank[b] = f / (f.std() + 1e-6) * settings.noise_hu
    picks = rng.integers(0, len(bank), size=k)
    offs = rng.integers(0, pad, size=(k, 2))
    # noise is lower in air (photon-rich) than inside the body
    for kk in range(k):
        n = bank[picks[kk], offs[kk, 0]: offs[kk, 0] + j, offs[kk, 1]: offs[kk, 1] + i]
        sl = out[kk]
        sl += np.where(sl > -900.0, n, n * np.float32(0.3))


def settings_for(acq: Acquisition) -> RenderSettings:
    return RenderSettings(
        thickness_mm=acq.slice_thickness_mm,
        edge_mm=max(acq.blur_mm, 0.6 * acq.pixel_spacing_mm),
        noise_hu=acq.noise_hu,
        noise_corr_mm=0.5 if acq.bone_kernel else 0.9,
        contrast=acq.contrast,
        metal=acq.metal,
        prone=acq.position.endswith("P"),
    )


def render_ct(phantom: Phantom, acq: Acquisition, seed: int) -> Volume:
    """Render ``phantom`` as scanned by ``acq``: float32 HU on :func:`grid_for` ``(acq)``."""
    grid = grid_for(acq)
    hu = render_grid(phantom, grid, settings_for(acq), seed)
    return Volume(hu=hu, affine_lps=grid.affine_lps,
                  meta={"source": "phantom", "seed": phantom.spec.seed, "position": acq.position})


def render_coarse(phantom: Phantom, spacing_mm: float, z_range: tuple[float, float], seed: int,
                  *, noise_hu: float = 15.0, contrast: bool | None = None, half_width_mm: float = 200.0,
                  center_xy: tuple[float, float] | None = None) -> Volume:
    """Render straight to an isotropic coarse grid (HFS) for training; no DICOM involved."""
    grid = coarse_grid(phantom, spacing_mm, z_range, half_width_mm, center_xy)
    settings = RenderSettings(
        thickness_mm=1.0, edge_mm=0.6 * spacing_mm, noise_hu=noise_hu,
        noise_corr_mm=spacing_mm * 0.5,
        contrast=phantom.spec.contrast if contrast is None else contrast,
        metal=phantom.spec.metal, prone=False,
    )
    return Volume(hu=render_grid(phantom, grid, settings, seed), affine_lps=grid.affine_lps,
                  meta={"source": "phantom-coarse", "seed": phantom.spec.seed})
