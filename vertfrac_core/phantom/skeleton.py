"""Bones of the phantom painted at full resolution: vertebrae (body, posterior elements, canal),
discs, ribs with costal cartilage, sternum, sacrum and pelvis.

Every vertebra is painted in its own frame (see :mod:`vertfrac_core.phantom.spine`), so that the
rendered body surface passes exactly through the ground-truth keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vertfrac_core.anatomy import region
from vertfrac_core.phantom.canvas import Canvas, shell
from vertfrac_core.phantom.shapes import capsule, occupancy, slab_capsule, superellipse_radius
from vertfrac_core.phantom.spine import Phantom, Vertebra
from vertfrac_core.phantom.torso import TorsoProfile


@dataclass(frozen=True)
class BoneMaterial:
    cortex_hu: float
    cortex_mm: float
    texture: np.ndarray  # (64, 64, 64) zero-mean trabecular texture, unit std
    texture_hu: float
    shell_mm: float = 0.8  # the vertebral body's cortical shell (walls and endplates)
    shell_hu: float = 900.0
    # the bony endplates (with the dense subchondral bone under them) are denser than the walls:
    # a layer this thick under each endplate surface, at plate_hu (0: no layer, the shell only)
    plate_mm: float = 0.0
    plate_hu: float = 0.0


def _local(v: Vertebra, X: np.ndarray, Y: np.ndarray, Z: np.ndarray):
    dx, dy, dz = X - np.float32(v.origin_lps[0]), Y - np.float32(v.origin_lps[1]), Z - np.float32(v.origin_lps[2])
    f = v.frame.astype(np.float32)
    a = dx * f[0, 0] + dy * f[1, 0] + dz * f[2, 0]
    l = dx * f[0, 1] + dy * f[1, 1] + dz * f[2, 1]
    s = dx * f[0, 2] + dy * f[1, 2] + dz * f[2, 2]
    return a, l, s


def _texture_at(mat: BoneMaterial, a: np.ndarray, l: np.ndarray, s: np.ndarray) -> np.ndarray:
    t = mat.texture
    n = t.shape[0]
    ia = (a * np.float32(1.6)).astype(np.int32) % n
    il = (l * np.float32(1.6)).astype(np.int32) % n
    is_ = (s * np.float32(1.6)).astype(np.int32) % n
    return t[ia, il, is_]


def _posterior_params(v: Vertebra) -> dict[str, float]:
    b = v.body
    reg = region(v.level)
    W, D, h = b.half_width, b.half_depth, b.hp
    k = v.posterior_scale
    rc_a = {"cervical": 6.5, "thoracic": 7.5, "lumbar": 8.5, "sacral": 7.0}[reg] * k
    rc_l = {"cervical": 11.5, "thoracic": 8.5, "lumbar": 11.0, "sacral": 12.0}[reg] * k
    return {
        "W": W, "D": D, "h": h, "rc_a": rc_a, "rc_l": rc_l,
        "ped_r": (1.8 + 0.14 * W) * k, "a_c": -D - rc_a - 1.0,
        "sp_len": ({"cervical": 22.0, "thoracic": 34.0, "lumbar": 28.0, "sacral": 12.0}[reg]
                   + (14.0 if v.level == "C7" else 0.0)) * k,
        "sp_angle": {"cervical": 0.35, "thoracic": 0.85, "lumbar": 0.12, "sacral": 0.3}[reg],
        "tp_len": {"cervical": 12.0, "thoracic": 16.0, "lumbar": 24.0, "sacral": 30.0}[reg] * k,
    }


def _local_box(v: Vertebra, a: tuple[float, float], l: tuple[float, float],
               s: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """LPS bounding box of the local box a x l x s of vertebra ``v``."""
    corners = np.array([[x, y, z] for x in a for y in l for z in s])
    pts = v.to_lps(corners)
    return pts.min(axis=0) - 2.0, pts.max(axis=0) + 2.0


def _vertebra_fields(v: Vertebra, p: dict[str, float]):
    b = v.body
    sacral = v.level == "S1"
    rc_l, ped_r, a_c, rc_a = p["rc_l"], p["ped_r"], p["a_c"], p["rc_a"]
    a_back = a_c - rc_a - 1.5
    thoracic = region(v.level) == "thoracic"
    ang = p["sp_angle"]
    sp_end = np.array([a_back - p["sp_len"] * np.cos(ang), 0.0, -p["sp_len"] * np.sin(ang)])
    sp_h = 7.0 if region(v.level) == "lumbar" else 2.0

    corners = tuple(b.keypoints_local()[:2, 2])  # the anterior corners (upper, lower), mid-plane

    def fields(X, Y, Z):
        a, l, s = _local(v, X, Y, Z)
        rho = superellipse_radius(a, l, b.half_depth, b.half_width, b.exponent)
        d_xy = (rho - 1.0) * np.float32(min(b.half_depth, b.half_width))
        top, bot = b.plates(a, rho)
        d_body = np.maximum(d_xy, np.maximum(s - top, bot - s))
        for size, s_corner in zip(b.osteophyte_mm, corners, strict=True):
            if size > 0:  # a spur along the anterior rim, reaching out and into the disc
                sgn = 1.0 if s_corner > 0 else -1.0
                c = np.array([b.half_depth - 0.2 * size, 0.0, s_corner + sgn * 0.5 * size])
                half = np.array([0.0, 0.35 * b.half_width, 0.0])
                d_body = np.minimum(d_body, capsule(a, l, s, c - half, c + half, 0.6 * size))
        d_pe = slab_capsule(a, s, l, np.array([a_back + 3.0, 0.0]), np.array([sp_end[0], sp_end[2]]),
                            0.6 * sp_h + 2.5, 3.2 if sp_h > 3 else 2.6)  # spinous process
        lam_r = 2.4 + 0.08 * b.half_width
        for side in (-1.0, 1.0):
            lp = side * (rc_l + ped_r * 0.6)
            parts = [
                slab_capsule(a, l, s - np.float32(0.12 * b.hp), np.array([-b.half_depth + 2, lp]),
                             np.array([a_c - rc_a * 0.2, lp]), ped_r * 0.85, 0.2 * b.hp),  # pedicle
                slab_capsule(a, l, s + np.float32(0.05 * b.hp), np.array([a_c - rc_a * 0.2, lp]),
                             np.array([a_back, 0.0]), lam_r, 0.42 * b.hp),  # lamina
            ]
            if thoracic:
                tip = np.array([a_c - 10.0, side * (p["W"] + p["tp_len"]), 0.2 * b.hp])
            else:
                tip = np.array([a_c + 2.0, side * (p["W"] + p["tp_len"]), 0.0])
            parts.append(capsule(a, l, s, np.array([a_c, lp + side * 2, 0.1 * b.hp]), tip,
                                 3.8 if thoracic else 3.0))  # transverse process
            la = side * (rc_l + ped_r + 1.0)
            parts.append(capsule(a, l, s, np.array([a_c - 1, la, 0.25 * b.hp]),
                                 np.array([a_c - 3, la, 0.62 * b.hp]), 3.5))  # superior facet
            parts.append(capsule(a, l, s, np.array([a_c - 4, la, -0.25 * b.hp]),
                                 np.array([a_c - 6, la, -0.68 * b.hp]), 3.5))  # inferior facet
            if sacral:
                parts.append(capsule(a, l, s, np.array([-b.half_depth * 0.3, side * b.half_width * 0.6, 0.1 * b.hp]),
                                     np.array([a_c, side * (b.half_width + 28), 0.0]), 11.0))
            for part in parts:
                d_pe = np.minimum(d_pe, part)
        d_canal = np.sqrt(((a - a_c) / rc_a) ** 2 + (l / rc_l) ** 2) * np.float32(min(rc_a, rc_l)) - min(rc_a, rc_l)
        d_canal = np.maximum(d_canal, np.abs(s) - np.float32(b.hp * 0.5 + 4.0))
        d_plate = np.maximum(s - top, bot - s)  # to the nearer endplate surface (< 0 between them)
        return {"d_body": d_body, "d_pe": d_pe, "d_canal": d_canal, "d_plate": d_plate}

    return fields


def paint_vertebra(canvas: Canvas, v: Vertebra, mat: BoneMaterial) -> None:
    """Body (cortex + trabecular core), canal (CSF) and posterior elements of one vertebra."""
    b = v.body
    p = _posterior_params(v)
    back = p["a_c"] - p["rc_a"] - 2.0 - p["sp_len"] * np.cos(p["sp_angle"]) - 8.0
    lat = p["W"] + p["tp_len"] + 6.0 + (30.0 if v.level == "S1" else 0.0)
    drop = p["sp_len"] * np.sin(p["sp_angle"]) + 10.0
    lo, hi = _local_box(v, (back, b.half_depth + 3.0), (-lat, lat), (-b.hp * 0.7 - drop, b.hp * 0.7 + 6.0))
    edge = canvas.edge_mm

    def shape(X, Y, Z, d_body, d_pe, d_canal, d_plate):
        a, l, s = _local(v, X, Y, Z)
        trab = np.float32(v.trabecular_hu) + _texture_at(mat, a, l, s) * np.float32(mat.texture_hu)
        core = trab
        if mat.plate_mm > 0:  # (the body's core only: the posterior elements keep theirs)
            layer = np.float32(1.0) - occupancy(d_plate + np.float32(mat.plate_mm), edge)
            core = trab + (np.float32(mat.plate_hu) - trab) * layer
        al_b, hu_b = shell(d_body, edge, mat.shell_mm, mat.shell_hu, core)
        al_p, hu_p = shell(d_pe, edge, mat.cortex_mm * 1.2, mat.cortex_hu * 0.9, trab * np.float32(1.3) + np.float32(110.0))
        alpha = occupancy(d_canal, edge) * np.float32(0.95)
        hu = np.full_like(alpha, 12.0)
        for al2, hu2 in ((al_p, hu_p), (al_b, hu_b)):  # canal under bone, body on top
            new_alpha = alpha + al2 * (1.0 - alpha)
            hu = (hu * alpha * (1.0 - al2) + hu2 * al2) / np.maximum(new_alpha, np.float32(1e-6))
            alpha = new_alpha
        return alpha, hu

    canvas.paint(lo, hi, shape, fields=_vertebra_fields(v, p))


def paint_disc(canvas: Canvas, upper: Vertebra, lower: Vertebra, disc_hu: float) -> None:
    """The intervertebral disc filling the space between two bodies."""
    mid = 0.5 * (upper.origin_lps + lower.origin_lps)
    D = 0.5 * (upper.body.half_depth + lower.body.half_depth) * 0.97
    W = 0.5 * (upper.body.half_width + lower.body.half_width) * 0.97
    edge = canvas.edge_mm
    frame = 0.5 * (upper.frame + lower.frame)

    def fields(X, Y, Z):
        au, lu, su = _local(upper, X, Y, Z)
        al, ll, sl = _local(lower, X, Y, Z)
        dx, dy, dz = X - np.float32(mid[0]), Y - np.float32(mid[1]), Z - np.float32(mid[2])
        a = dx * np.float32(frame[0, 0]) + dy * np.float32(frame[1, 0]) + dz * np.float32(frame[2, 0])
        l = dx * np.float32(frame[0, 1]) + dy * np.float32(frame[1, 1]) + dz * np.float32(frame[2, 1])
        rho = superellipse_radius(a, l, D, W, 2.4)
        _, bot_u = upper.body.plates(au, superellipse_radius(au, lu, upper.body.half_depth, upper.body.half_width, 2.4))
        top_l, _ = lower.body.plates(al, superellipse_radius(al, ll, lower.body.half_depth, lower.body.half_width, 2.4))
        d = np.maximum((rho - 1.0) * np.float32(min(D, W)), np.maximum(su - bot_u, top_l - sl))
        return {"d": d, "rho": rho}

    def shape(X, Y, Z, d, rho):
        return occupancy(d, edge), np.float32(disc_hu) - np.float32(25.0) * np.clip(1.0 - rho, 0, 1)

    gap = 0.5 * float(np.linalg.norm(upper.origin_lps - lower.origin_lps))
    lo = np.minimum(upper.origin_lps, lower.origin_lps) - [max(W, D) + 4] * 3
    hi = np.maximum(upper.origin_lps, lower.origin_lps) + [max(W, D) + 4] * 3
    lo[2], hi[2] = mid[2] - gap * 0.8 - 6, mid[2] + gap * 0.8 + 6
    canvas.paint(lo, hi, shape, fields=fields)


def paint_ribs(canvas: Canvas, phantom: Phantom, torso: TorsoProfile, mat: BoneMaterial,
               cartilage_hu: float) -> None:
    """Rib pairs from the thoracic vertebrae around the chest wall, with costal cartilage."""
    sc = phantom.spec.body_scale
    n_ribs = phantom.spec.rib_pairs
    for idx, v in enumerate(vv for vv in phantom.vertebrae if vv.has_ribs):
        n = idx + 1
        for side in (-1.0, 1.0):
            head = v.to_lps(np.array([[-v.body.half_depth * 0.55, side * v.body.half_width * 0.9, 0.3 * v.body.hp]]))[0]
            p = _posterior_params(v)
            tub = v.to_lps(np.array([[p["a_c"] - 10.0, side * (p["W"] + p["tp_len"]), 0.2 * v.body.hp]]))[0]
            cx, cy, ax, ay = torso.inner_ellipse(float(tub[2]))
            ax, ay = ax - 4.0, ay - 4.0
            th0 = np.arccos(np.clip(side * (tub[0] - cx) / ax, -0.95, 0.95))
            floating = n > n_ribs - 2 and n >= 11
            th_end = np.radians(-20.0 if floating else (-75.0 if n <= 7 else -50.0))
            ts = np.linspace(0.0, 1.0, 14)
            ang = th0 + (th_end - th0) * ts
            drop = (18.0 + 4.0 * min(n, 9)) * sc
            zs = tub[2] + 6.0 * np.sin(np.pi * ts * 0.5) - drop * ts**1.4
            pts = np.stack([cx + side * ax * np.cos(ang), cy + ay * np.sin(ang), zs], 1)
            path = np.vstack([head, tub, pts])
            r = (3.2 + 0.25 * min(n, 6)) * sc
            _paint_tube(canvas, path, r, mat, float(v.trabecular_hu) * 0.8 + 20.0)
            if not floating and n <= 10:
                end = pts[-1]
                stern = np.array([side * 14.0, cy - ay + 6.0, end[2] + (20.0 if n > 7 else 8.0)])
                _paint_tube(canvas, np.vstack([end, stern]), r * 1.05, None, cartilage_hu)


def _paint_tube(canvas: Canvas, path: np.ndarray, r: float, mat: BoneMaterial | None, core_hu: float) -> None:
    edge = canvas.edge_mm
    if canvas.voxel_mm >= 2.0:  # coarse grid: one paint for the whole tube (fewer, larger calls)
        if len(path) > 6:  # every other point is plenty at this voxel size
            path = np.vstack([path[:-1:2], path[-1:]])

        def whole(X, Y, Z):
            d = capsule(X, Y, Z, path[0], path[1], r)
            for a, b in zip(path[1:-1], path[2:], strict=True):
                d = np.minimum(d, capsule(X, Y, Z, a, b, r))
            if mat is None:
                return occupancy(d, edge), np.float32(core_hu)
            return shell(d, edge, mat.cortex_mm, mat.cortex_hu * 0.9, np.float32(core_hu))

        canvas.paint(path.min(axis=0) - r - 2, path.max(axis=0) + r + 2, whole)
        return
    for a, b in zip(path[:-1], path[1:], strict=True):
        lo = np.minimum(a, b) - r - 2
        hi = np.maximum(a, b) + r + 2

        def fields(X, Y, Z, a=a, b=b):
            return {"d": capsule(X, Y, Z, a, b, r)}

        def shape(X, Y, Z, d):
            if mat is None:
                return occupancy(d, edge), np.float32(core_hu)
            return shell(d, edge, mat.cortex_mm, mat.cortex_hu * 0.9, np.float32(core_hu))

        canvas.paint(lo, hi, shape, fields=fields)


def paint_sternum_and_pelvis(canvas: Canvas, phantom: Phantom, torso: TorsoProfile, mat: BoneMaterial) -> None:
    """Sternum, iliac wings, femoral heads and pubic rami (simplified shapes)."""
    z_of = {v.level: float(v.origin_lps[2]) for v in phantom.vertebrae}
    sc = phantom.spec.body_scale
    edge = canvas.edge_mm
    marrow = 0.7 * phantom.spec.l1_hu + 40.0
    # sternum: a flat bar behind the anterior chest wall from T2 to T9
    z_top, z_bot = z_of["T2"] + 10.0, z_of["T9"]
    for z0, z1, hw in ((z_top, z_of["T4"], 22.0 * sc), (z_of["T4"], z_bot, 14.0 * sc)):
        cx, cy, ax, ay = torso.inner_ellipse(0.5 * (z0 + z1))
        y0 = cy - ay + 5.0

        def sternum(X, Y, Z, y0=y0, z0=z0, z1=z1, hw=hw):
            d = np.maximum(np.maximum(np.abs(X) - hw, np.abs(Y - y0) - 5.5),
                           np.maximum(Z - z0, z1 - Z))
            return shell(d, edge, mat.cortex_mm, mat.cortex_hu * 0.85, np.float32(marrow))

        canvas.paint(np.array([-hw - 3, y0 - 9, z1 - 3]), np.array([hw + 3, y0 + 9, z0 + 3]), sternum)
    # pelvis below the sacrum
    s1 = phantom.vertebra("S1")
    sx, sy, sz = s1.origin_lps
    for side in (-1.0, 1.0):
        # iliac wing: part of an ellipsoidal shell lateral to the sacrum
        c = np.array([sx + side * 30.0 * sc, sy - 15.0, sz - 10.0])
        rad = np.array([95.0, 65.0, 75.0]) * sc

        def wing(X, Y, Z, c=c, rad=rad, side=side):
            q = np.sqrt(((X - c[0]) / rad[0]) ** 2 + ((Y - c[1]) / rad[1]) ** 2 + ((Z - c[2]) / rad[2]) ** 2)
            d = np.abs(q - 1.0) * np.float32(rad.min()) - 4.0
            d = np.maximum(d, -(side * (X - c[0])) + 15.0)  # lateral half only
            d = np.maximum(d, Z - np.float32(c[2] + 55.0 * sc))  # iliac crest
            d = np.maximum(d, np.float32(c[2] - 80.0 * sc) - Z)
            d = np.maximum(d, Y - np.float32(c[1] + 45.0))
            return shell(d, edge, 1.5, mat.cortex_hu * 0.85, np.float32(marrow))

        canvas.paint(c - rad - 5, c + rad + 5, wing)
        head = np.array([sx + side * 92.0 * sc, sy - 75.0 * sc, sz - 95.0 * sc])
        neck_end = head + np.array([side * 35.0, 8.0, -30.0]) * sc
        shaft_end = neck_end + np.array([side * 8.0, 0.0, -150.0])
        sym = np.array([sx + side * 8.0, sy - 125.0 * sc, sz - 110.0 * sc])
        isch = head + np.array([-side * 15.0, 35.0, -45.0]) * sc
        parts = [(head, head, 23.0 * sc), (head, neck_end, 14.0 * sc), (neck_end, shaft_end, 14.0 * sc),
                 (head, sym, 9.0 * sc), (head, isch, 12.0 * sc), (isch, sym, 8.0 * sc)]
        for a, b, r in parts:
            lo, hi = np.minimum(a, b) - r - 3, np.maximum(a, b) + r + 3

            def part(X, Y, Z, a=a, b=b, r=r):
                return shell(capsule(X, Y, Z, a, b, r), edge, 1.6, mat.cortex_hu * 0.9, np.float32(marrow))

            canvas.paint(lo, hi, part)


def paint_sacrum(canvas: Canvas, phantom: Phantom, mat: BoneMaterial) -> None:
    """Fused sacral segments S2-S5 and the coccyx along the curve below S1, tapering, with alae."""
    s1 = phantom.vertebra("S1")
    curve = phantom.curve_lps
    i0 = int(np.argmin(np.linalg.norm(curve - s1.origin_lps, axis=1)))
    start = i0 + int(s1.body.hp * 0.5 + 6)
    sc = phantom.spec.body_scale
    edge = canvas.edge_mm
    marrow = 0.8 * s1.trabecular_hu + 30.0
    idx = list(range(start, min(len(curve) - 1, start + 100), 9))
    for n, (ia, ib) in enumerate(zip(idx[:-1], idx[1:], strict=False)):
        frac = n / max(1, len(idx) - 2)
        r = (15.0 - 10.0 * frac) * sc
        wing = (42.0 - 34.0 * frac) * sc
        a, b = curve[ia], curve[ib]
        left = s1.frame[:, 1]
        back = -s1.frame[:, 0]
        segs = [(a, b, r), (a + left * wing * 0.4 + back * 4, a + left * wing + back * 10, r * 0.9),
                (a - left * wing * 0.4 + back * 4, a - left * wing + back * 10, r * 0.9)]
        for p0, p1, rr in segs:
            lo, hi = np.minimum(p0, p1) - rr - 3, np.maximum(p0, p1) + rr + 3

            def fields(X, Y, Z, p0=p0, p1=p1, rr=rr):
                return {"d": capsule(X, Y, Z, p0, p1, rr)}

            def shape(X, Y, Z, d):
                return shell(d, edge, mat.cortex_mm, mat.cortex_hu * 0.85, np.float32(marrow))

            canvas.paint(lo, hi, shape, fields=fields)
