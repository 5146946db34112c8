"""A volume being painted: composites soft shapes into bounding-box patches of a grid.

Each shape is a function of LPS coordinate arrays returning ``(alpha, hu)``: the covered
fraction (0..1) and the HU of the covering material. The canvas evaluates it only inside the
shape's bounding box, on ``n_sub`` planes per slice spread over the slice thickness (the slice
sensitivity profile), averages them, and blends ``out = out * (1 - alpha) + alpha * hu``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vertfrac_core.phantom.acquisition import Grid

ShapeFn = Callable[..., tuple[np.ndarray, np.ndarray | float]]
FieldFn = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray]]


class Canvas:
    """Holds the HU array (K, J, I) of ``grid`` and paints shapes into it."""

    def __init__(self, grid: Grid, thickness_mm: float, edge_mm: float, fill_hu: float = -1000.0,
                 data: np.ndarray | None = None) -> None:
        self.grid = grid
        self.edge_mm = float(edge_mm)
        self.data = (
            np.full(grid.shape, fill_hu, dtype=np.float32) if data is None else np.asarray(data, dtype=np.float32)
        )
        n_sub = max(1, int(np.ceil(thickness_mm / 1.3)))
        self.z_offsets = ((np.arange(n_sub) + 0.5) / n_sub - 0.5) * thickness_mm
        self.xs = grid.xs.astype(np.float32)
        self.ys = grid.ys.astype(np.float32)
        self.zs = grid.zs.astype(np.float32)

    def paint(self, lo: np.ndarray, hi: np.ndarray, shape: ShapeFn,
              fields: FieldFn | None = None, step_mm: float = 1.5) -> None:
        """Blend ``shape`` into the voxels whose centres lie in the LPS box [lo, hi] (widened by
        the slice thickness).

        With ``fields``, the expensive part (signed distances) is evaluated on a grid of about
        ``step_mm`` and linearly upsampled to the voxels; ``shape(X, Y, Z, **fields)`` then only
        turns the upsampled fields into (alpha, hu). Distance fields are smooth, so this costs
        little accuracy (well under the voxel size) and saves most of the arithmetic.
        """
        half_t = float(np.max(np.abs(self.z_offsets)))
        box = self.grid.box(np.asarray(lo) - [0, 0, half_t], np.asarray(hi) + [0, 0, half_t])
        if box is None:
            return
        kk, jj, ii = box
        n_sub = len(self.z_offsets)
        z = (self.zs[kk][:, None] + self.z_offsets[None, :].astype(np.float32)).reshape(-1)
        X = self.xs[ii][None, None, :]
        Y = self.ys[jj][None, :, None]
        Z = z[:, None, None]
        if fields is None:
            alpha, hu = shape(X, Y, Z)
        elif self._coarse_enough(step_mm):  # the grid is no finer than the field step
            alpha, hu = shape(X, Y, Z, **fields(X, Y, Z))
        else:
            alpha, hu = shape(X, Y, Z, **self._coarse_fields(fields, X[0, 0], Y[0, :, 0], z, step_mm))
        alpha = np.broadcast_to(alpha, (z.size, Y.shape[1], X.shape[2]))
        ahu = alpha * hu
        if n_sub > 1:
            nk = z.size // n_sub
            alpha = alpha.reshape(nk, n_sub, *alpha.shape[1:]).mean(axis=1)
            ahu = ahu.reshape(nk, n_sub, *ahu.shape[1:]).mean(axis=1)
        target = self.data[kk, jj, ii]  # a view: blended in place
        target *= 1.0 - alpha
        target += ahu

    @property
    def voxel_mm(self) -> float:
        """The smallest voxel edge of the grid (mm)."""
        d = [abs(float(c[1] - c[0])) for c in (self.xs, self.ys, self.zs) if c.size > 1]
        return min(d) if d else 1.0

    def _coarse_enough(self, step_mm: float) -> bool:
        d = [abs(float(c[1] - c[0])) for c in (self.xs, self.ys, self.zs) if c.size > 1]
        return bool(d) and min(d) >= 0.75 * step_mm and len(self.z_offsets) == 1

    @staticmethod
    def _coarse_fields(fields: FieldFn, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                       step_mm: float) -> dict[str, np.ndarray]:
        """Evaluate ``fields`` on a coarse grid covering the points (x, y, z) and interpolate
        linearly back onto them (x, y regular; z any increasing or decreasing set)."""
        import torch
        import torch.nn.functional as F

        def axis(c: np.ndarray) -> tuple[np.ndarray, int]:
            if c.size < 2:
                return c.copy(), 1
            d = float(c[1] - c[0])
            f = max(1, int(round(step_mm / abs(d))))
            n = (c.size - 1) // f + 2
            return (c[0] + d * f * np.arange(n)).astype(np.float32), f

        xc, fx = axis(x)
        yc, fy = axis(y)
        z0, z1 = float(z.min()), float(z.max())
        nzc = max(2, int(np.ceil((z1 - z0) / step_mm)) + 2)
        dzc = max((z1 - z0) / (nzc - 1), 1e-3)
        zc = (z0 + dzc * np.arange(nzc)).astype(np.float32)
        coarse = fields(xc[None, None, :], yc[None, :, None], zc[:, None, None])
        pos = np.clip((z - z0) / dzc, 0, nzc - 1.001)
        i0 = pos.astype(np.int64)
        w = (pos - i0).astype(np.float32)[:, None, None]
        names = list(coarse)
        stack = np.stack([np.broadcast_to(coarse[n], (nzc, yc.size, xc.size)) for n in names])
        zi = stack[:, i0] * (1 - w) + stack[:, i0 + 1] * w  # (fields, nz, yc, xc)
        if fx > 1 or fy > 1:
            size = ((yc.size - 1) * fy + 1, (xc.size - 1) * fx + 1)
            with torch.no_grad():
                t = torch.from_numpy(np.ascontiguousarray(zi.transpose(1, 0, 2, 3), dtype=np.float32))
                zi = F.interpolate(t, size=size, mode="bilinear", align_corners=True).numpy()
            zi = zi.transpose(1, 0, 2, 3)
        out = {n: zi[m, :, : y.size, : x.size] for m, n in enumerate(names)}
        return out


def shell(d: np.ndarray, edge_mm: float, cortex_mm: float, cortex_hu: float,
          core_hu: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, hu) of a bone: a cortical shell ``cortex_mm`` thick around a core."""
    from vertfrac_core.phantom.shapes import occupancy

    outer = occupancy(d, edge_mm)
    inner = occupancy(d + np.float32(cortex_mm), edge_mm)
    safe = np.maximum(outer, np.float32(1e-6))
    hu = (cortex_hu * (outer - inner) + core_hu * inner) / safe
    return outer, hu
