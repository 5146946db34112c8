"""Signed-distance primitives and soft (partial-volume) occupancy, vectorised with numpy.

Distances are in mm, negative inside. ``occupancy(d, w)`` turns a signed distance into the
fraction of a voxel covered by the shape for an edge of width ``w`` mm (a linear ramp), which
models partial volume and the scanner's point spread without a separate blur pass.
"""

from __future__ import annotations

import numpy as np


def occupancy(d: np.ndarray, width_mm: float) -> np.ndarray:
    """Fraction inside (0..1) for signed distance ``d`` and edge width ``width_mm``."""
    out = 0.5 - d * np.float32(1.0 / width_mm)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def ellipse_distance(x: np.ndarray, y: np.ndarray, ax: float | np.ndarray, ay: float | np.ndarray) -> np.ndarray:
    """Approximate signed distance (mm) to an axis-aligned ellipse centred at 0 (first order:
    ``(q - 1) / |grad q|`` with ``q`` the normalised radius)."""
    u = x / ax
    v = y / ay
    q = np.sqrt(u * u + v * v) + np.float32(1e-6)
    g = np.sqrt((u / ax) ** 2 + (v / ay) ** 2) / q + np.float32(1e-6)
    return (q - 1.0) / g


def ellipsoid_distance(x: np.ndarray, y: np.ndarray, z: np.ndarray, r: tuple[float, float, float]) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipsoid of radii ``r`` centred at 0."""
    u, v, w = x / r[0], y / r[1], z / r[2]
    q = np.sqrt(u * u + v * v + w * w) + np.float32(1e-6)
    g = np.sqrt((u / r[0]) ** 2 + (v / r[1]) ** 2 + (w / r[2]) ** 2) / q + np.float32(1e-6)
    return (q - 1.0) / g


def segment_distance(px: np.ndarray, py: np.ndarray, pz: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unsigned distance from points to the segment a-b (3-vectors)."""
    ab = b - a
    denom = float(ab @ ab) or 1e-9
    t = ((px - a[0]) * ab[0] + (py - a[1]) * ab[1] + (pz - a[2]) * ab[2]) / denom
    np.clip(t, 0.0, 1.0, out=t)
    dx = px - (a[0] + t * ab[0])
    dy = py - (a[1] + t * ab[1])
    dz = pz - (a[2] + t * ab[2])
    return np.sqrt(dx * dx + dy * dy + dz * dz)


def capsule(px: np.ndarray, py: np.ndarray, pz: np.ndarray, a: np.ndarray, b: np.ndarray, r: float) -> np.ndarray:
    """Signed distance to a capsule (segment a-b swept by a sphere of radius r)."""
    return segment_distance(px, py, pz, a, b) - r


def slab_capsule(px: np.ndarray, py: np.ndarray, pz: np.ndarray, a: np.ndarray, b: np.ndarray,
                 r: float, half_height: float) -> np.ndarray:
    """Signed distance to a plate: the 2D capsule a-b in the (x, y) plane extruded along z by
    +-half_height (a and b are (x, y) points; z is the extrusion axis, centred at 0)."""
    d2 = segment_distance(px, py, np.zeros_like(px), np.array([a[0], a[1], 0.0]),
                          np.array([b[0], b[1], 0.0])) - r
    return np.maximum(d2, np.abs(pz) - half_height)


def superellipse_radius(a: np.ndarray, l: np.ndarray, half_a: float, half_l: float, p: float) -> np.ndarray:
    """Normalised superellipse radius: 1 on the rim of |a/A|^p + |l/L|^p = 1."""
    return (np.abs(a / half_a) ** p + np.abs(l / half_l) ** p) ** (1.0 / p)
