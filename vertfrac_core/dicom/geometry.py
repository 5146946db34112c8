"""Stack geometry from header positions alone: order, step, gaps, duplicates, tilt.

Shared by selection (is this series a usable volume?) and loading (how to assemble it), so both
agree. All positions are patient LPS mm. Slices are ordered by the projection of
ImagePositionPatient on the slice normal (row x column direction), never by InstanceNumber.

Gantry tilt is kept as a *sheared affine*, not resampled: the k column of the affine is the
actual position step between slices (along the table), which is not parallel to the slice
normal when the gantry is tilted. That mapping is exact for the stored pixels, costs no
interpolation, and every later step already resamples through the full affine (step 1 goes to
a coarse isotropic grid), so an extra orthogonalising resample would only blur the data twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class GeometryPolicy:
    """Tolerances (mm, keyword-only use) for deciding what a stack of slices is."""

    duplicate_tol_mm: float = 0.01  # two slices closer than this along the normal coincide
    line_tol_mm: float = 0.1  # largest distance of a position from the stack line
    spacing_tol_mm: float = 0.02  # |step - nominal| above this (and 1 %) is "variable spacing"
    max_gap_slices: int = 2  # missing consecutive slices interpolated; more is rejected
    orientation_tol: float = 1e-3  # direction cosines equal within this


@dataclass(frozen=True)
class StackGeometry:
    """How a set of slices forms a volume.

    Attributes:
        order: indices into the input positions, sorted along the stack, duplicates dropped.
        offsets_mm: (K,) distance of each kept slice from the first along the stack line.
        row_dir, col_dir, normal: unit LPS vectors (row direction = along a row = i axis).
        stack_dir: unit LPS vector from the first to the last slice (normal unless tilted).
        step_mm: nominal distance between consecutive slices along ``stack_dir``.
        duplicates: slices dropped because they repeat a position.
        gaps: (index of the slice before the gap, number of missing slices) per gap.
        variable_spacing: steps differ beyond tolerance (not only by whole missing slices).
        tilt_deg: angle between ``stack_dir`` and the slice normal (gantry tilt).
        problems: reasons the stack is not a usable volume (empty when usable).
    """

    order: np.ndarray
    offsets_mm: np.ndarray
    row_dir: np.ndarray
    col_dir: np.ndarray
    normal: np.ndarray
    stack_dir: np.ndarray
    step_mm: float
    duplicates: int = 0
    gaps: tuple[tuple[int, int], ...] = ()
    variable_spacing: bool = False
    tilt_deg: float = 0.0
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def usable(self) -> bool:
        return not self.problems

    @property
    def n_slices(self) -> int:
        return int(len(self.order))

    @property
    def coverage_mm(self) -> float:
        """Extent of the stack along its line (first to last slice centre)."""
        return float(self.offsets_mm[-1] - self.offsets_mm[0]) if len(self.offsets_mm) else 0.0

    @property
    def needs_resampling(self) -> bool:
        return bool(self.gaps) or self.variable_spacing


def directions(orientation: tuple[float, ...] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row_dir, col_dir, normal) unit vectors from the 6 ImageOrientationPatient cosines."""
    o = np.asarray(orientation, dtype=np.float64)
    r, c = o[:3], o[3:]
    r = r / np.linalg.norm(r)
    c = c / np.linalg.norm(c)
    return r, c, np.cross(r, c)


def orientation_problem(orientation: tuple[float, ...] | None, *, tol: float = 1e-2) -> str | None:
    """Why 6 direction cosines are not a valid orientation, or None."""
    if orientation is None or len(orientation) != 6:
        return "no ImageOrientationPatient"
    o = np.asarray(orientation, dtype=np.float64)
    if not np.all(np.isfinite(o)):
        return "ImageOrientationPatient is not finite"
    nr, nc = np.linalg.norm(o[:3]), np.linalg.norm(o[3:])
    if abs(nr - 1) > tol or abs(nc - 1) > tol or abs(float(o[:3] @ o[3:])) > tol:
        return f"ImageOrientationPatient {list(o)} is not two orthonormal vectors"
    return None


def analyze_stack(
    positions: np.ndarray,
    orientation: tuple[float, ...] | np.ndarray,
    *,
    policy: GeometryPolicy = GeometryPolicy(),
    slice_thickness_mm: float | None = None,
) -> StackGeometry:
    """Order slices and describe the stack they form.

    Args:
        positions: (N, 3) ImagePositionPatient of every slice (LPS mm), any order.
        orientation: the shared 6 direction cosines.
        slice_thickness_mm: used as the step of a single-slice "stack".
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    r, c, n = directions(orientation)
    problems: list[str] = []
    proj = pos @ n
    order = np.argsort(proj, kind="stable")
    # duplicates: equal projection; identical in-plane offset too, else the series is mixed
    keep = [int(order[0])] if len(order) else []
    duplicates = 0
    for idx in order[1:]:
        prev = keep[-1]
        if abs(proj[idx] - proj[prev]) < policy.duplicate_tol_mm:
            duplicates += 1
            if np.linalg.norm(pos[idx] - pos[prev]) > policy.line_tol_mm:
                problems.append("two slices share a plane at different in-plane positions")
            continue
        keep.append(int(idx))
    kept = np.asarray(keep, dtype=np.int64)
    p = pos[kept]
    if len(p) < 2:
        step = float(slice_thickness_mm or 1.0)
        return StackGeometry(kept, np.zeros(len(p)), r, c, n, n, step, duplicates,
                             problems=tuple(problems))
    line = p[-1] - p[0]
    u = line / np.linalg.norm(line)
    rel = p - p[0]
    off = rel @ u
    resid = np.linalg.norm(rel - off[:, None] * u[None, :], axis=1)
    if resid.max() > policy.line_tol_mm:
        problems.append(f"slice positions are not on one line (off by up to {resid.max():.2f} mm)")
    tilt = float(np.degrees(np.arccos(np.clip(abs(float(u @ n)), -1.0, 1.0))))
    steps = np.diff(off)
    step = float(np.median(steps))
    ratio = steps / step
    whole = np.rint(ratio)
    tol = np.maximum(policy.spacing_tol_mm, 0.01 * step) / step
    gaps = tuple((int(k), int(m) - 1) for k, m in enumerate(whole) if m >= 2 and abs(ratio[k] - m) <= tol)
    gap_idx = {k for k, _ in gaps}
    variable = any(abs(ratio[k] - 1) > tol for k in range(len(ratio)) if k not in gap_idx)
    largest = float(steps.max())
    if largest > (policy.max_gap_slices + 1) * step * (1 + 1e-3):
        problems.append(f"gap of {largest:.1f} mm between slices ({largest / step:.1f} x the "
                        f"{step:.2f} mm step; at most {policy.max_gap_slices} missing slices "
                        "are interpolated)")
    return StackGeometry(kept, off, r, c, n, u, step, duplicates, gaps, variable, tilt,
                         tuple(problems))


def stack_affine(geom: StackGeometry, first_position: np.ndarray,
                 pixel_spacing: tuple[float, float]) -> np.ndarray:
    """4x4 voxel (i, j, k) -> LPS mm affine of a uniform stack starting at ``first_position``.

    ``pixel_spacing`` is DICOM order (row spacing = between rows = along j, column spacing).
    The k column is ``stack_dir * step_mm`` (sheared when the gantry is tilted).
    """
    aff = np.eye(4)
    aff[:3, 0] = geom.row_dir * float(pixel_spacing[1])
    aff[:3, 1] = geom.col_dir * float(pixel_spacing[0])
    aff[:3, 2] = geom.stack_dir * geom.step_mm
    aff[:3, 3] = np.asarray(first_position, dtype=np.float64)
    return aff
