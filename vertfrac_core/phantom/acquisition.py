"""How a phantom is scanned: field of view, grid, slice profile, patient position, kernel, noise.

:func:`sample_acquisition` draws the random protocol; :func:`grid_for` turns it into the voxel
grid (shape and voxel -> LPS affine, DICOM convention). Positions map to image orientations as
scanners write them: HFS rows +x (L) / columns +y (P); FFS -x / +y; HFP -x / -y; FFP +x / -y.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

import numpy as np

from vertfrac_core.phantom.spine import Phantom


class FieldOfView(str, Enum):
    CHEST = "chest"
    ABDOMEN = "abdomen"
    CAP = "chest-abdomen-pelvis"
    SPINE_FREE = "no-spine"  # a reconstruction that misses the column (e.g. a small liver FOV)


_POSITION_AXES = {
    "HFS": (np.array([1.0, 0, 0]), np.array([0, 1.0, 0])),
    "FFS": (np.array([-1.0, 0, 0]), np.array([0, 1.0, 0])),
    "HFP": (np.array([-1.0, 0, 0]), np.array([0, -1.0, 0])),
    "FFP": (np.array([1.0, 0, 0]), np.array([0, -1.0, 0])),
}

_KERNELS = {  # manufacturer -> (soft kernels, bone kernels)
    "SIEMENS": (("B30f", "Br40d", "I31f"), ("B70f", "Br64d", "I70f")),
    "GE MEDICAL SYSTEMS": (("STANDARD", "SOFT"), ("BONE", "BONEPLUS")),
    "Philips": (("B", "C"), ("D", "YD")),
    "TOSHIBA": (("FC08", "FC18"), ("FC30", "FC35")),
}


@dataclass(frozen=True)
class Acquisition:
    """A CT protocol applied to one phantom (mm, HU)."""

    fov: FieldOfView
    matrix: int  # rows = columns
    pixel_spacing_mm: float
    slice_thickness_mm: float
    slice_spacing_mm: float  # distance between slice centres (< thickness: overlapping)
    z_top_mm: float  # LPS z of the most superior slice centre
    z_bottom_mm: float  # LPS z of the most inferior slice centre
    center_xy_mm: tuple[float, float]  # LPS (x, y) of the in-plane FOV centre
    position: str  # HFS, FFS, HFP, FFP
    kernel: str
    bone_kernel: bool
    kvp: int
    manufacturer: str
    noise_hu: float  # standard deviation of the image noise in soft tissue
    blur_mm: float  # width of the in-plane point spread (edge softness)
    contrast: bool
    metal: bool
    descending: bool = True  # slice order: head to feet (True) or feet to head

    @property
    def n_slices(self) -> int:
        return int(round((self.z_top_mm - self.z_bottom_mm) / self.slice_spacing_mm)) + 1


@dataclass(frozen=True)
class Grid:
    """An axis-aligned voxel grid: 1D LPS coordinates of columns, rows and slices."""

    xs: np.ndarray  # (I,) LPS x of each column
    ys: np.ndarray  # (J,) LPS y of each row
    zs: np.ndarray  # (K,) LPS z of each slice centre
    affine_lps: np.ndarray  # (4, 4) voxel (i, j, k) -> LPS

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.zs), len(self.ys), len(self.xs))

    def box(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Index slices (k, j, i) covering the LPS box [lo, hi]; None when it misses the grid."""
        out = []
        for coords, a, b in ((self.zs, lo[2], hi[2]), (self.ys, lo[1], hi[1]), (self.xs, lo[0], hi[0])):
            idx = np.nonzero((coords >= a) & (coords <= b))[0]
            if idx.size == 0:
                return None
            out.append(slice(int(idx[0]), int(idx[-1]) + 1))
        return out[0], out[1], out[2]


def landmarks_z(phantom: Phantom) -> dict[str, float]:
    """LPS z (mm) of anatomical landmarks used to place fields of view."""
    z = {v.level: float(v.origin_lps[2]) for v in phantom.vertebrae}
    last_lumbar = [lv for lv in phantom.spec.levels if lv.startswith("L")][-1]
    z["last_lumbar"] = z[last_lumbar]
    z["last_thoracic"] = z[[lv for lv in phantom.spec.levels if lv.startswith("T")][-1]]
    z["symphysis"] = z["S1"] - 110.0 * phantom.spec.body_scale
    return z


def sample_acquisition(
    phantom: Phantom, rng: np.random.Generator, profile: str = "full", fov: FieldOfView | None = None
) -> Acquisition:
    """Draw a protocol for ``phantom``. ``profile``: 'full' (512 matrix, 0.55-0.98 mm pixels,
    0.625-5 mm slices) or 'small' (256 matrix, about 1.5 mm pixels, 2-3 mm slices: fast demos)."""
    if profile not in ("full", "small"):
        raise ValueError(f"profile must be 'full' or 'small'; got {profile!r}")
    lm = landmarks_z(phantom)
    if fov is None:
        fov = FieldOfView(rng.choice(["chest", "abdomen", "chest-abdomen-pelvis"], p=[0.35, 0.3, 0.35]))
    if fov == FieldOfView.CHEST:
        top = lm["C7"] + rng.uniform(5.0, 45.0)
        bottom = lm["L1"] - rng.uniform(-10.0, 40.0)
    elif fov == FieldOfView.ABDOMEN:
        top = lm["T9"] + rng.uniform(-10.0, 30.0)
        bottom = (lm["symphysis"] if rng.random() < 0.6 else lm["S1"]) - rng.uniform(0.0, 30.0)
    elif fov == FieldOfView.CAP:
        top = lm["C7"] + rng.uniform(5.0, 45.0)
        bottom = lm["symphysis"] - rng.uniform(0.0, 30.0)
    else:  # a liver-dome reconstruction that leaves the column out (see center_xy below)
        top = lm["T10"] + 20.0
        bottom = lm["L2"]
    manufacturer = str(rng.choice(list(_KERNELS)))
    bone = bool(rng.random() < 0.3)
    kernel = str(rng.choice(_KERNELS[manufacturer][1 if bone else 0]))
    if profile == "full":
        matrix = 512
        spacing = float(rng.uniform(0.55, 0.98))
        thickness = float(rng.choice([0.625, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0],
                                     p=[0.12, 0.18, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1]))
    else:
        matrix = 256
        spacing = float(rng.uniform(1.35, 1.7))
        thickness = float(rng.choice([2.0, 2.5, 3.0]))
    half_width = 175.0 * phantom.spec.body_scale * (1 + (phantom.spec.bmi - 25) / 60)
    spacing = max(spacing, min(0.98 if profile == "full" else 1.9, 2 * half_width / matrix))
    slice_spacing = thickness if rng.random() < 0.7 else float(thickness * rng.choice([0.5, 0.8]))
    spine_y = float(np.mean([v.origin_lps[1] for v in phantom.vertebrae]))
    center = (float(rng.normal(0, 8)), spine_y - 40.0 + float(rng.normal(0, 8)))
    if fov == FieldOfView.SPINE_FREE:
        spacing = min(spacing, 0.6)
        center = (-90.0, spine_y - 150.0)  # right upper quadrant, anterior
    noise = float(rng.uniform(8, 22) if not bone else rng.uniform(25, 55))
    noise *= float(np.sqrt(1.25 / max(thickness, 0.625)) ** 0.8)
    return Acquisition(
        fov=fov, matrix=matrix, pixel_spacing_mm=spacing, slice_thickness_mm=thickness,
        slice_spacing_mm=slice_spacing, z_top_mm=float(top), z_bottom_mm=float(bottom),
        center_xy_mm=center,
        position=str(rng.choice(["HFS", "FFS", "HFP"], p=[0.8, 0.12, 0.08])),
        kernel=kernel, bone_kernel=bone, kvp=int(rng.choice([100, 120, 140], p=[0.25, 0.6, 0.15])),
        manufacturer=manufacturer, noise_hu=noise,
        blur_mm=float(rng.uniform(0.45, 0.7) if bone else rng.uniform(0.8, 1.2)),
        contrast=phantom.spec.contrast, metal=phantom.spec.metal,
        descending=bool(rng.random() < 0.7),
    )


def with_thickness(acq: Acquisition, thickness_mm: float, noise_scale: float = 1.0) -> Acquisition:
    """The same acquisition reconstructed at another slice thickness (spacing = thickness)."""
    return replace(acq, slice_thickness_mm=thickness_mm, slice_spacing_mm=thickness_mm,
                   noise_hu=acq.noise_hu * noise_scale)


def grid_for(acq: Acquisition) -> Grid:
    """The voxel grid of ``acq`` (DICOM convention: affine maps (i, j, k) to LPS mm)."""
    row_dir, col_dir = _POSITION_AXES[acq.position]
    n = acq.matrix
    ps = acq.pixel_spacing_mm
    half = (n - 1) / 2.0 * ps
    cx, cy = acq.center_xy_mm
    # voxel (0, 0) sits at the FOV corner opposite to the row/column directions
    origin_xy = np.array([cx, cy, 0.0]) - half * row_dir - half * col_dir
    k = acq.n_slices
    if acq.descending:
        z0, dz = acq.z_top_mm, -acq.slice_spacing_mm
    else:
        z0, dz = acq.z_top_mm - (k - 1) * acq.slice_spacing_mm, acq.slice_spacing_mm
    aff = np.eye(4)
    aff[:3, 0] = row_dir * ps
    aff[:3, 1] = col_dir * ps
    aff[:3, 2] = np.array([0.0, 0.0, dz])
    aff[:3, 3] = origin_xy + np.array([0.0, 0.0, z0])
    xs = aff[0, 3] + aff[0, 0] * np.arange(n)
    ys = aff[1, 3] + aff[1, 1] * np.arange(n)
    zs = aff[2, 3] + aff[2, 2] * np.arange(k)
    return Grid(xs=xs, ys=ys, zs=zs, affine_lps=aff)


def coarse_grid(phantom: Phantom, spacing_mm: float, z_range: tuple[float, float],
                half_width_mm: float = 200.0, center_xy: tuple[float, float] | None = None) -> Grid:
    """An isotropic LPS-aligned grid (HFS orientation) for fast training samples."""
    spine_y = float(np.mean([v.origin_lps[1] for v in phantom.vertebrae]))
    cx, cy = center_xy if center_xy is not None else (0.0, spine_y - 40.0)
    n = int(np.ceil(2 * half_width_mm / spacing_mm)) + 1
    k = int(np.ceil((z_range[1] - z_range[0]) / spacing_mm)) + 1
    aff = np.diag([spacing_mm, spacing_mm, -spacing_mm, 1.0])
    aff[:3, 3] = [cx - half_width_mm, cy - half_width_mm, z_range[1]]
    xs = aff[0, 3] + spacing_mm * np.arange(n)
    ys = aff[1, 3] + spacing_mm * np.arange(n)
    zs = aff[2, 3] - spacing_mm * np.arange(k)
    return Grid(xs=xs, ys=ys, zs=zs, affine_lps=aff)
