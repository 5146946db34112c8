"""Straightened curved-planar reformation along the spine centre line, both directions exact.

The centre line ``C(s)`` (arc length ``s`` in mm, cranial first) is a C2 cubic spline. Its local
frame: tangent ``t(s)`` (caudal), ``b(s)`` the patient's posterior direction made orthogonal to
``t``, and ``l(s) = t x b`` (patient left for a head-first column). A reformat pixel at row ``r``,
column ``c`` and slab offset ``u`` (mm) sits at

    P = C(s) + v * b(s) + u * l(s),   s = s0 + r * step,   v = v0 + c * step

so rows run cranial -> caudal, columns anterior -> posterior (the usual sagittal display), and
channel ``u = 0`` is the central sagittal plane. The inverse solves ``(P - C(s)) . t(s) = 0`` for
``s`` by Newton steps from the nearest sample; round trips agree to far below 0.1 mm for points
closer to the line than its radius of curvature.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
from scipy.interpolate import CubicSpline

from vertfrac_core.errors import NoSpineError
from vertfrac_core.resample import sample_lps
from vertfrac_core.volume import Volume

POSTERIOR = np.array([0.0, 1.0, 0.0])


@dataclass(frozen=True)
class ReformatSettings:
    step_mm: float = 1.0
    anterior_mm: float = 70.0  # columns reach this far anterior of the line
    posterior_mm: float = 90.0  # ... and this far posterior (spinous processes)
    slab_offsets_mm: tuple[float, ...] = (-4.0, 0.0, 4.0)  # channels (0 = mid-sagittal)
    margin_mm: float = 15.0  # rows extend this far beyond the line's ends

    @property
    def line_col(self) -> float:
        """The column of the straightened image that holds the centre line (v = 0)."""
        return self.anterior_mm / self.step_mm


class Reformation:
    """The straightening of one centre line; maps both ways between reformat pixels and LPS."""

    def __init__(self, line_lps: np.ndarray, settings: ReformatSettings = ReformatSettings()) -> None:
        pts = np.asarray(line_lps, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 4:
            raise NoSpineError(f"a centre line needs at least 4 points (N, 3); got {pts.shape}")
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        keep = np.concatenate([[True], seg > 1e-6])
        pts = pts[keep]
        s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
        self.spline = CubicSpline(s, pts, axis=0, bc_type="natural", extrapolate=True)
        self.length_mm = float(s[-1])
        self.settings = settings
        st = settings.step_mm
        self.s_values = np.arange(-settings.margin_mm, self.length_mm + settings.margin_mm + 1e-9, st)
        self.v_values = np.arange(-settings.anterior_mm, settings.posterior_mm + 1e-9, st)
        self._dense_s = np.arange(-settings.margin_mm, self.length_mm + settings.margin_mm + 1e-9, 0.5)
        self._dense_c = self.spline(self._dense_s)

    # frames ---------------------------------------------------------------------------------
    def frames(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(C, t, b, l) at arc lengths ``s`` (each (N, 3)); beyond the ends the line continues
        straight along its end tangent."""
        s = np.atleast_1d(np.asarray(s, dtype=np.float64))
        sc = np.clip(s, 0.0, self.length_mm)
        t = self.spline(sc, 1)
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        c = self.spline(sc) + (s - sc)[:, None] * t
        b = POSTERIOR[None, :] - (t @ POSTERIOR)[:, None] * t
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        l_ = np.cross(t, b)
        return c, t, b, l_

    def with_slab_offsets(self, offsets_mm: tuple[float, ...],
                          columns_mm: tuple[float, float] | None = None) -> Reformation:
        """The same straightening with other slab channels (the spline is shared, not refitted)
        and, given ``columns_mm`` (reach anterior and posterior of the line), other columns."""
        other = copy.copy(self)
        st = replace(self.settings, slab_offsets_mm=tuple(float(u) for u in offsets_mm))
        if columns_mm is not None:
            st = replace(st, anterior_mm=float(columns_mm[0]), posterior_mm=float(columns_mm[1]))
            other.v_values = np.arange(-st.anterior_mm, st.posterior_mm + 1e-9, st.step_mm)
        other.settings = st
        return other

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, rows, columns) of the reformatted image."""
        return (len(self.settings.slab_offsets_mm), len(self.s_values), len(self.v_values))

    # forward --------------------------------------------------------------------------------
    def to_lps(self, rows: np.ndarray, cols: np.ndarray, u_mm: np.ndarray | float = 0.0) -> np.ndarray:
        """(N, 3) LPS mm of fractional pixel positions (rows, cols) at slab offset ``u_mm``."""
        rows = np.atleast_1d(np.asarray(rows, dtype=np.float64))
        cols = np.atleast_1d(np.asarray(cols, dtype=np.float64))
        st = self.settings.step_mm
        s = self.s_values[0] + rows * st
        v = self.v_values[0] + cols * st
        c, _, b, l_ = self.frames(s)
        u = np.broadcast_to(np.asarray(u_mm, dtype=np.float64), s.shape)
        return c + v[:, None] * b + u[:, None] * l_

    def image(self, volume: Volume) -> np.ndarray:
        """The straightened image (channels, rows, columns) float32 HU, trilinear sampling."""
        c, _, b, l_ = self.frames(self.s_values)
        v = self.v_values
        u = np.asarray(self.settings.slab_offsets_mm)
        pts = (c[None, :, None, :] + v[None, None, :, None] * b[None, :, None, :]
               + u[:, None, None, None] * l_[None, :, None, :])
        return sample_lps(volume, pts)

    # inverse --------------------------------------------------------------------------------
    def from_lps(self, points_lps: np.ndarray, iterations: int = 6) -> np.ndarray:
        """(N, 3) fractional (row, col, u_mm) of LPS points (inverse of :meth:`to_lps`)."""
        p = np.atleast_2d(np.asarray(points_lps, dtype=np.float64))
        # start from the nearest dense sample, then Newton on g(s) = (p - C(s)) . t(s)
        d2 = ((p[:, None, :] - self._dense_c[None, :, :]) ** 2).sum(-1)
        s = self._dense_s[np.argmin(d2, axis=1)]
        for _ in range(iterations):
            c, t, _, _ = self.frames(s)
            g = np.einsum("ij,ij->i", p - c, t)
            # dg/ds ~ -|C'|^2 + (p - C) . t' ; t' from the spline's second derivative
            sc = np.clip(s, 0.0, self.length_mm)
            d1 = self.spline(sc, 1)
            d2_ = self.spline(sc, 2)
            n1 = np.linalg.norm(d1, axis=1, keepdims=True)
            tp = (d2_ - (np.einsum("ij,ij->i", d2_, t))[:, None] * t) / n1
            inside = (s > 0) & (s < self.length_mm)
            dg = -1.0 + np.where(inside, np.einsum("ij,ij->i", p - c, tp), 0.0)
            s = s - g / np.where(np.abs(dg) < 1e-6, -1.0, dg)
        c, _, b, l_ = self.frames(s)
        rel = p - c
        v = np.einsum("ij,ij->i", rel, b)
        u = np.einsum("ij,ij->i", rel, l_)
        st = self.settings.step_mm
        return np.stack([(s - self.s_values[0]) / st, (v - self.v_values[0]) / st, u], axis=1)
