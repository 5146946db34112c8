"""Soft tissue of the phantom: body outline, fat, muscle, lungs, mediastinum and heart, abdominal
organs, vessels (enhanced when contrast is given), bowel, bladder, and the patient table.

Painted on a coarse grid (about 1.5-2 mm in plane, 3-4 mm between slices) and upsampled by the
renderer: soft-tissue boundaries are smooth, and this keeps a 512 x 512 x 400 render fast. All
organs are placed relative to the column, so scoliosis and kyphosis move them with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vertfrac_core.phantom.canvas import Canvas
from vertfrac_core.phantom.shapes import ellipse_distance, ellipsoid_distance, occupancy
from vertfrac_core.phantom.spine import Phantom


@dataclass(frozen=True)
class TorsoProfile:
    """Body and column outlines as functions of LPS z (tables sampled every mm)."""

    z: np.ndarray  # ascending
    spine_x: np.ndarray
    spine_y: np.ndarray
    half_depth: np.ndarray
    half_width: np.ndarray
    cy: np.ndarray  # body outline centre (y); x centre is 0
    ax: np.ndarray
    ay: np.ndarray
    fat_mm: float
    wall_mm: float
    z_dome: float  # top of the right diaphragm dome
    z_apex: float  # lung apex
    z_s1: float
    z_l5: float
    table_y: float  # LPS y of the table surface
    prone: bool

    def at(self, name: str, z: np.ndarray | float) -> np.ndarray:
        return np.interp(z, self.z, getattr(self, name)).astype(np.float32)

    def inner_ellipse(self, z: float) -> tuple[float, float, float, float]:
        """(cx, cy, ax, ay) of the cavity inside the muscle wall at height z."""
        inset = self.fat_mm + self.wall_mm
        return 0.0, float(self.at("cy", z)), float(self.at("ax", z)) - inset, float(self.at("ay", z)) - inset


def torso_profile(phantom: Phantom, prone: bool = False) -> TorsoProfile:
    """Outline of the body around the column of ``phantom``."""
    spec = phantom.spec
    sc = spec.body_scale
    fat = 4.0 + max(0.0, spec.bmi - 18.0) * 1.6
    vz = np.array([v.origin_lps[2] for v in phantom.vertebrae])[::-1]
    order = np.argsort(vz)
    verts = phantom.vertebrae[::-1]
    z = np.arange(vz.min() - 250.0, vz.max() + 120.0, 1.0)
    def vint(vals):
        return np.interp(z, vz[order], np.asarray(vals)[order])
    sx = vint([v.origin_lps[0] for v in verts])
    sy = vint([v.origin_lps[1] for v in verts])
    D = vint([v.body.half_depth for v in verts])
    W = vint([v.body.half_width for v in verts])
    zl = {v.level: float(v.origin_lps[2]) for v in phantom.vertebrae}
    last_l = [lv for lv in spec.levels if lv.startswith("L")][-1]
    # landmarks (z descending): neck, shoulders, chest, waist, pelvis, thighs
    belly = 1.0 + max(0.0, spec.bmi - 22.0) / 25.0
    knots = [
        (zl["C3"] + 60, 55 * sc, 52 * sc, 38 * sc),
        (zl["C7"] + 5, 62 * sc, 58 * sc, 45 * sc),
        (zl["T2"], 150 * sc, 95 * sc, 55 * sc),
        (zl["T6"], 155 * sc, 108 * sc, 58 * sc),
        (zl["T11"], 150 * sc * belly**0.5, 112 * sc * belly**0.6, 62 * sc),
        (zl["L3"], 145 * sc * belly**0.7, 108 * sc * belly, 65 * sc),
        (zl["S1"], 165 * sc * belly**0.5, 105 * sc * belly**0.7, 62 * sc),
        (zl["S1"] - 150, 175 * sc * belly**0.4, 100 * sc * belly**0.5, 55 * sc),
    ]
    kz = np.array([k[0] for k in knots])[::-1]
    ax = np.interp(z, kz, np.array([k[1] for k in knots])[::-1]) + 0.7 * fat
    ay = np.interp(z, kz, np.array([k[2] for k in knots])[::-1]) + 0.7 * fat
    back = np.interp(z, kz, np.array([k[3] for k in knots])[::-1]) + D + fat
    # the back follows the column but is flattened against the table when supine
    back_y = sy + back
    cy = back_y - ay
    if not prone:
        table_y = float(np.percentile(back_y[(z > zl["T1"] - 300) & (z < zl["T1"])], 95)) + 1.0
    else:
        front = cy - ay
        table_y = float(np.percentile(front[(z > zl["L3"]) & (z < zl["T4"])], 15)) - 1.0
    return TorsoProfile(
        z=z, spine_x=sx, spine_y=sy, half_depth=D, half_width=W, cy=cy, ax=ax, ay=ay,
        fat_mm=fat, wall_mm=11.0 * sc, z_dome=zl["T10"] + 8.0 * sc, z_apex=zl["T1"] + 28.0 * sc,
        z_s1=zl["S1"], z_l5=zl[last_l], table_y=table_y, prone=prone,
    )


@dataclass(frozen=True)
class SoftTissueHU:
    fat: float = -100.0
    muscle: float = 48.0
    lung: float = -860.0
    blood: float = 42.0
    liver: float = 58.0
    spleen: float = 48.0
    kidney: float = 32.0
    bowel: float = 28.0
    fluid: float = 8.0

    def enhanced(self) -> SoftTissueHU:
        return SoftTissueHU(self.fat, self.muscle + 8, self.lung, 260.0, 105.0, 115.0, 170.0, 70.0, self.fluid)


def _bank(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float, n: int = 6) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    out = np.empty((n, *shape), dtype=np.float32)
    for i in range(n):
        f = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px, mode="wrap")
        out[i] = f / (f.std() + 1e-6)
    return out


def _field3d(rng: np.random.Generator, shape: tuple[int, int, int],
             sigma_vox: tuple[float, float, float]) -> np.ndarray:
    """A smooth 3D random field of unit standard deviation: white noise filtered on a grid about
    one sigma apart, then trilinearly upsampled (same statistics, a fraction of the cost)."""
    from scipy.ndimage import gaussian_filter

    from vertfrac_core.phantom.render import upsample_linear

    f = [max(1, int(round(s))) for s in sigma_vox]
    small = tuple(max(2, n // fi + 2) for n, fi in zip(shape, f, strict=True))
    noise = gaussian_filter(rng.standard_normal(small).astype(np.float32),
                            [s / fi for s, fi in zip(sigma_vox, f, strict=True)], mode="nearest")
    up = upsample_linear(noise, tuple((n - 1) * fi + 1 for n, fi in zip(small, f, strict=True)))
    out = np.ascontiguousarray(up[: shape[0], : shape[1], : shape[2]])
    return out / (out.std() + 1e-6)


def paint_soft_tissue(canvas: Canvas, phantom: Phantom, prof: TorsoProfile, contrast: bool,
                      rng: np.random.Generator) -> None:
    """Paint every soft tissue of ``phantom`` into ``canvas`` (a coarse grid)."""
    hu = SoftTissueHU().enhanced() if contrast else SoftTissueHU()
    g = canvas.grid
    big = np.array([1e4, 1e4, 1e4])
    px = float(abs(g.xs[1] - g.xs[0]))
    fine = _bank(rng, (len(g.ys), len(g.xs)), 1.2 / px)
    pz = float(abs(g.zs[1] - g.zs[0])) if len(g.zs) > 1 else px
    bowel_vol = _field3d(rng, g.shape, (9.0 / pz, 9.0 / px, 9.0 / px))  # loops, continuous in z
    tex_vol = _field3d(rng, g.shape, (6.0 / pz, 6.0 / px, 6.0 / px))  # (K, J, I), unit std
    vessel = _bank(rng, (len(g.ys), len(g.xs)), 1.8 / px)
    vessel_vol = vessel[rng.integers(0, len(vessel), size=len(g.zs))]
    fine_vol = fine[rng.integers(0, len(fine), size=len(g.zs))]
    zmin, zmax = float(g.zs.min()), float(g.zs.max())

    def zsel(Z):  # index of each Z plane in the texture stacks (Z is the plane coordinate array)
        return np.argmin(np.abs(g.zs[None, :] - Z.reshape(-1, 1)), axis=1)

    def body(X, Y, Z):
        cy, ax, ay = prof.at("cy", Z), prof.at("ax", Z), prof.at("ay", Z)
        d = ellipse_distance(X, Y - cy, ax, ay)
        d = np.maximum(d, (Y - prof.table_y) if not prof.prone else (prof.table_y - Y))
        k = zsel(Z)
        return occupancy(d, 2.0), np.float32(hu.fat) + 12.0 * tex_vol[k]

    def wall(X, Y, Z):
        cy, ax, ay = prof.at("cy", Z), prof.at("ax", Z), prof.at("ay", Z)
        d = ellipse_distance(X, Y - cy, ax - prof.fat_mm, ay - prof.fat_mm)
        d = np.maximum(d, (Y - prof.table_y + prof.fat_mm * 0.5) if not prof.prone else (prof.table_y + prof.fat_mm * 0.5 - Y))
        return occupancy(d, 2.0), np.float32(hu.muscle) + 6.0 * tex_vol[zsel(Z)]

    def cavity(X, Y, Z):
        inset = prof.fat_mm + prof.wall_mm
        cy, ax, ay = prof.at("cy", Z), prof.at("ax", Z), prof.at("ay", Z)
        sy, D = prof.at("spine_y", Z), prof.at("half_depth", Z)
        sx, W = prof.at("spine_x", Z), prof.at("half_width", Z)
        d = ellipse_distance(X, Y - cy, ax - inset, ay - inset)
        # the column and its muscles block the cavity in the midline; lungs reach the gutters
        d_block = np.maximum(np.abs(X - sx) - (W + 18.0), (sy - D * 0.6) - Y)
        d = np.maximum(d, -d_block)
        d = np.maximum(d, Z - np.float32(prof.z_apex + 25.0))  # no cavity in the neck
        d = np.maximum(d, np.float32(prof.z_s1 - 120.0) - Z)
        k = zsel(Z)
        # abdomen: mesenteric fat with bowel loops (a band of the texture), chest: lung
        loops = bowel_vol[k]
        abdo = np.where(loops > 0.35, np.float32(hu.bowel) + 10.0 * fine_vol[k], np.float32(-88.0))
        abdo = np.where(np.abs(loops - 0.35) < 0.12, np.float32(hu.bowel + 15.0), abdo)  # walls
        abdo = np.where(loops > 1.7, np.float32(-950.0), abdo)  # gas in the largest loops
        dome = prof.z_dome - 0.004 * ((np.abs(X) - 65.0) ** 2 + (Y - cy) ** 2) - 12.0 * (X > 0)
        lung = np.float32(hu.lung) + 25.0 * fine_vol[k] + 900.0 * np.clip(vessel_vol[k] - 2.3, 0, 1)
        apex_taper = np.clip((prof.z_apex - Z) / 50.0, 0.0, 1.0)
        is_lung = (dome < Z) & (np.abs(X) > 20.0 + (1 - apex_taper) * (ax - inset))
        val = np.where(is_lung, lung, abdo)
        return occupancy(d, 2.0), val

    canvas.paint(-big, big, body)
    canvas.paint(-big, big, wall)
    canvas.paint(-big, big, cavity)
    _paint_organs(canvas, phantom, prof, hu, contrast)
    _paint_table(canvas, prof, zmin, zmax)


def _ellipsoid(canvas: Canvas, c: np.ndarray, r: tuple[float, float, float], value: float,
               edge: float = 2.0) -> None:
    def shape(X, Y, Z):
        return occupancy(ellipsoid_distance(X - c[0], Y - c[1], Z - c[2], r), edge), np.float32(value)

    canvas.paint(c - np.array(r) - 4, c + np.array(r) + 4, shape)


def _tube_z(canvas: Canvas, prof: TorsoProfile, z0: float, z1: float, dx: float, dy: float,
            r: float, value: float, anterior_of_body: bool = True) -> None:
    """A vertical vessel/muscle following the column at offset (dx, dy) from the body centre."""
    def shape(X, Y, Z):
        sx, sy = prof.at("spine_x", Z), prof.at("spine_y", Z)
        D = prof.at("half_depth", Z) if anterior_of_body else np.float32(0.0)
        d = np.sqrt((X - sx - dx) ** 2 + (Y - (sy - D + dy)) ** 2) - r
        d = np.maximum(d, np.maximum(Z - z1, z0 - Z))
        return occupancy(d, 1.5), np.float32(value)

    canvas.paint(np.array([-1e4, -1e4, z0 - 4]), np.array([1e4, 1e4, z1 + 4]), shape)


def _paint_organs(canvas: Canvas, phantom: Phantom, prof: TorsoProfile, hu: SoftTissueHU,
                  contrast: bool) -> None:
    zl = {v.level: float(v.origin_lps[2]) for v in phantom.vertebrae}
    sc = phantom.spec.body_scale
    sy_at = lambda z: float(prof.at("spine_y", z))  # noqa: E731
    D_at = lambda z: float(prof.at("half_depth", z))  # noqa: E731
    zd = prof.z_dome
    # mediastinum, heart, great vessels
    _ellipsoid(canvas, np.array([0.0, sy_at(zl["T4"]) - D_at(zl["T4"]) - 40, zl["T4"]]), (32 * sc, 40 * sc, 70), -40.0)
    zh = zl["T8"]
    _ellipsoid(canvas, np.array([28.0 * sc, sy_at(zh) - D_at(zh) - 78 * sc, zh]), (58 * sc, 46 * sc, 55 * sc), hu.blood if contrast else 40.0)
    if contrast:  # myocardium of the left ventricle around the enhanced blood pool
        _ellipsoid(canvas, np.array([45.0 * sc, sy_at(zh) - D_at(zh) - 60 * sc, zh - 10]), (30 * sc, 26 * sc, 30 * sc), 60.0)
    _tube_z(canvas, prof, zl["L4"], zl["T4"], 16 * sc, -13 * sc, 12.5 * sc, hu.blood)  # descending aorta
    _tube_z(canvas, prof, zl["T5"], zl["T3"] + 10, 5 * sc, -75 * sc, 15 * sc, hu.blood)  # ascending aorta
    _tube_z(canvas, prof, zl["L5"], zd, -24 * sc, -18 * sc, 11 * sc, 140.0 if contrast else 40.0)  # IVC
    _tube_z(canvas, prof, zl["T4"], zl["C7"] + 40, 0.0, -20 * sc, 9 * sc, -1000.0)  # trachea
    _tube_z(canvas, prof, zl["T11"], zl["T1"], -4 * sc, -7 * sc, 6 * sc, 35.0)  # oesophagus
    # abdominal organs
    _ellipsoid(canvas, np.array([-62.0 * sc, sy_at(zd - 60) - 55 * sc, zd - 55 * sc]), (92 * sc, 80 * sc, 80 * sc), hu.liver)
    _ellipsoid(canvas, np.array([88.0 * sc, sy_at(zd - 50) - 5 * sc, zd - 50 * sc]), (32 * sc, 45 * sc, 48 * sc), hu.spleen)
    _ellipsoid(canvas, np.array([55.0 * sc, sy_at(zd - 40) - 85 * sc, zd - 45 * sc]), (48 * sc, 38 * sc, 42 * sc), 15.0)
    for side, dz in ((1.0, 0.0), (-1.0, -15.0)):
        zk = zl["L1"] + dz
        c = np.array([side * 68.0 * sc, sy_at(zk) + 8.0, zk])
        _ellipsoid(canvas, c, (27 * sc, 24 * sc, 55 * sc), hu.kidney)
        if contrast:
            _ellipsoid(canvas, c + [side * 3, 0, 0], (17 * sc, 14 * sc, 42 * sc), 90.0)
        # psoas, growing from T12 to L5
        for lv, r in (("L1", 9.0), ("L2", 14.0), ("L3", 19.0), ("L4", 24.0), ("L5", 26.0)):
            if lv in zl:
                zc = zl[lv]
                W = float(prof.at("half_width", zc))
                _ellipsoid(canvas, np.array([float(prof.at("spine_x", zc)) + side * (W + r * 0.7), sy_at(zc) + 2.0, zc]),
                           (r * sc, r * 0.85 * sc, 22.0), hu.muscle)
        # paraspinal muscles along the whole column
        def paraspinal(X, Y, Z, side=side):
            sx, sy, D = prof.at("spine_x", Z), prof.at("spine_y", Z), prof.at("half_depth", Z)
            grow = np.clip((zl["T8"] - Z) / 200.0, 0.0, 1.0)
            rx, ry = (24 + 14 * grow) * sc, (20 + 12 * grow) * sc
            d = ellipse_distance(X - sx - side * (rx + 8), Y - (sy + D + 22 + ry), rx, ry)
            d = np.maximum(d, Z - np.float32(zl["C3"] + 40))
            return occupancy(d, 2.0), np.float32(hu.muscle - 3)

        canvas.paint(np.array([-1e4, -1e4, -1e4]), np.array([1e4, 1e4, 1e4]), paraspinal)
        # gluteal muscles
        _ellipsoid(canvas, np.array([side * 85.0 * sc, sy_at(prof.z_s1) + 35.0, prof.z_s1 - 80]), (55 * sc, 45 * sc, 80), hu.muscle)
    _ellipsoid(canvas, np.array([0.0, sy_at(prof.z_s1) - 95 * sc, prof.z_s1 - 95]), (45 * sc, 38 * sc, 35), hu.fluid)


def _paint_table(canvas: Canvas, prof: TorsoProfile, zmin: float, zmax: float) -> None:
    sgn = -1.0 if prof.prone else 1.0
    for off, thick, value in ((2.0, 4.0, 180.0), (9.0, 28.0, -850.0), (37.0, 3.0, 150.0)):
        y0 = prof.table_y + sgn * (off + thick / 2)

        def shape(X, Y, Z, y0=y0, thick=thick, value=value):
            yc = y0 + sgn * 0.0009 * X * X
            d = np.maximum(np.abs(Y - yc) - thick / 2, np.abs(X) - 240.0)
            return occupancy(d, 1.5) + 0 * Z, np.float32(value)

        canvas.paint(np.array([-300, min(y0 - 80, y0 + 80), zmin - 5]),
                     np.array([300, max(y0 - 80, y0 + 80), zmax + 5]), shape)
