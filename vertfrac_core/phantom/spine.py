"""Spine geometry of a phantom: the column's curve, each vertebra's frame, body shape and truth.

All coordinates are patient LPS millimetres (x Left, y Posterior, z Superior). The column is
built from C3 (above the graded range, for realism) down to S1 by integrating the tangent angle
along arc length: sagittal curvature (cervical lordosis, thoracic kyphosis, lumbar lordosis,
sacral kyphosis, plus the local kink of each wedge fracture) and coronal curvature (scoliosis as
one period of a sine of the tangent angle, so the column is balanced at both ends). Bodies and
discs are stacked along the arc, so a crushed body shortens the column as it does in life.

Body shape in the vertebra's own frame (``e_ant``, ``e_left``, ``e_sup``; origin at the body
centre): cross-section a superellipse of half-depth ``D`` and half-width ``W``; upper and lower
endplates are planes through the anterior and posterior walls (tilted by wedging) minus a
concavity ``c * (1 - rho^2)`` towards the centre. The 6 keypoints lie on that surface in the
mid-sagittal plane at ``a = +D, 0, -D`` (anterior, middle, posterior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vertfrac_core.anatomy import reference
from vertfrac_core.morphometry import DeformityType, Grading, grade_spine
from vertfrac_core.phantom.population import FractureSpec, PatientSpec

ANTERIOR_LPS = np.array([0.0, -1.0, 0.0])
EXTRA_ABOVE = ("C3", "C4", "C5", "C6")  # rendered for realism, not graded


@dataclass(frozen=True)
class BodyShape:
    """Vertebral body in its local frame (mm). Heights are those of the mid-sagittal plane."""

    half_depth: float  # D, along e_ant
    half_width: float  # W, along e_left
    ha: float
    hm: float
    hp: float
    upper_share: float  # fraction of the anterior/middle height deficit taken by the upper plate
    exponent: float = 2.4  # superellipse exponent of the cross-section
    # the endplates' concavity spans the central ``concavity_width`` of the radius and leaves a
    # flat rim outside it (1: a parabola from wall to wall); real endplates are often flat at the
    # ring apophysis and dip only in their middle
    concavity_width: float = 1.0
    # marginal osteophytes at the anterior rim of the upper and lower endplates (mm; 0: none):
    # bone beyond the body's corners that the keypoints (and the heights) leave out
    osteophyte_mm: tuple[float, float] = (0.0, 0.0)

    def plates(self, a: np.ndarray, rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Upper and lower endplate heights (e_sup coordinate) at AP position ``a`` and normalised
        radius ``rho`` (1 on the cross-section's rim)."""
        d = self.half_depth
        t = np.clip((a + d) / (2.0 * d), 0.0, 1.0)  # 0 posterior wall, 1 anterior wall
        h_wall = self.hp + (self.ha - self.hp) * t
        # plane through the walls; the deficit from the posterior height is split upper/lower
        deficit = self.hp - h_wall
        top = self.hp / 2.0 - self.upper_share * deficit
        bot = -self.hp / 2.0 + (1.0 - self.upper_share) * deficit
        # concavity so that the middle height is hm
        h_mid_plane = self.hp + (self.ha - self.hp) * 0.5
        c = max(0.0, (h_mid_plane - self.hm) / 2.0)
        conc = c * np.clip(1.0 - (rho / self.concavity_width) ** 2, 0.0, 1.0)
        return top - conc, bot + conc

    def keypoints_local(self) -> np.ndarray:
        """(6, 3) keypoints in local (a, l, s) mm, in the order of KEYPOINT_NAMES."""
        d = self.half_depth
        pts = []
        for a in (d, 0.0, -d):
            rho = np.array(abs(a) / d)
            top, bot = self.plates(np.array(a), rho)
            pts.append((a, 0.0, float(top)))
            pts.append((a, 0.0, float(bot)))
        return np.array(pts)


@dataclass(frozen=True)
class Vertebra:
    """One rendered vertebra: level, frame, shape, density and (for graded levels) the truth."""

    level: str
    graded: bool
    origin_lps: np.ndarray  # (3,) body centre (frame origin)
    frame: np.ndarray  # (3, 3) columns e_ant, e_left, e_sup in LPS
    body: BodyShape
    trabecular_hu: float
    fracture: FractureSpec | None
    has_ribs: bool
    posterior_scale: float = 1.0

    def to_lps(self, local: np.ndarray) -> np.ndarray:
        """Map (N, 3) local (a, l, s) mm to LPS mm."""
        return np.asarray(local) @ self.frame.T + self.origin_lps

    @property
    def keypoints_lps(self) -> np.ndarray:
        return self.to_lps(self.body.keypoints_local())

    def body_contains(self, point_lps: np.ndarray) -> bool:
        """True when ``point_lps`` lies inside this vertebral body (used to match detections)."""
        return bool(self.body_contains_many(np.asarray(point_lps, dtype=float)[None, :])[0])

    def body_contains_many(self, points_lps: np.ndarray) -> np.ndarray:
        """(N,) bool: which of the (N, 3) LPS points lie inside this vertebral body."""
        from vertfrac_core.phantom.shapes import superellipse_radius

        a, l_, s = ((np.asarray(points_lps, dtype=float) - self.origin_lps) @ self.frame).T
        b = self.body
        rho = superellipse_radius(a, l_, b.half_depth, b.half_width, b.exponent)
        top, bot = b.plates(a, rho)
        return (rho <= 1.0) & (bot <= s) & (s <= top)

    @property
    def center_lps(self) -> np.ndarray:
        """Body centre: the mean of the 6 keypoints."""
        return self.keypoints_lps.mean(axis=0)


@dataclass(frozen=True)
class VertebraTruth:
    level: str
    center_lps: np.ndarray
    keypoints_lps: np.ndarray
    ha_mm: float
    hm_mm: float
    hp_mm: float
    grading: Grading
    trabecular_hu: float
    intended: FractureSpec | None


@dataclass(frozen=True)
class Phantom:
    spec: PatientSpec
    vertebrae: tuple[Vertebra, ...]  # C3 ... S1, cranial to caudal
    curve_lps: np.ndarray  # (N, 3) column centre line sampled every 1 mm, cranial first
    truth: tuple[VertebraTruth, ...]  # graded levels only

    def vertebra(self, level: str) -> Vertebra:
        for v in self.vertebrae:
            if v.level == level:
                return v
        raise KeyError(level)

    @property
    def l1_truth(self) -> VertebraTruth:
        return next(t for t in self.truth if t.level == "L1")


def _bump(s: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Smooth non-negative bump on [lo, hi] with unit integral."""
    x = np.clip((s - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    b = np.sin(np.pi * x) ** 2
    return b / max(hi - lo, 1e-6) * 2.0


def _endplate_variety(spec: PatientSpec, rng: np.random.Generator) -> tuple[float, tuple[float, float]]:
    """(concavity width, (upper, lower) anterior osteophyte mm) of one body: the width uniform
    0.5-1.0; osteophytes at each anterior rim with a probability rising from 0 at 40 years to
    0.5 at 90, 1.5-4 mm."""
    width = float(rng.uniform(0.5, 1.0))
    p = float(np.clip((spec.age - 40) / 100.0, 0.0, 0.5))
    ost = tuple(float(rng.uniform(1.5, 4.0)) if rng.random() < p else 0.0 for _ in range(2))
    return width, (ost[0], ost[1])


def _body_shape(level: str, spec: PatientSpec, jitter: float, frac: FractureSpec | None,
                rng: np.random.Generator, rng_variety: np.random.Generator) -> BodyShape:
    ref = reference(level)
    scale = spec.body_scale * (1.0 + jitter)
    hp = ref.hp_mm * scale
    ha = hp * ref.ha_hp * (1.0 + rng.normal(0.0, 0.015))
    hm = hp * ref.hm_hp * (1.0 + rng.normal(0.0, 0.012))
    # normal bodies vary more than the draws above allow (real lumbar anterior / posterior
    # heights in ../shared: 0.89-1.25 against references of 0.94-1.06): 5 % and 3 % more
    ha *= 1.0 + float(np.clip(rng_variety.normal(0.0, 0.05), -0.12, 0.12))
    hm *= 1.0 + float(np.clip(rng_variety.normal(0.0, 0.03), -0.07, 0.07))
    upper_share = 0.5
    if frac is not None:
        keep = 1.0 - frac.height_loss
        if frac.type == DeformityType.WEDGE:
            # the anterior wall collapses; the endplate concavity is kept
            hm = hm - (ha - ha * keep) / 2.0
            ha = ha * keep
            upper_share = 0.75
        elif frac.type == DeformityType.BICONCAVE:
            hm = hm * keep
        else:  # crush: the whole body loses height
            hp, ha, hm = hp * keep, ha * keep, hm * keep
    width, ost = _endplate_variety(spec, rng_variety)
    return BodyShape(
        concavity_width=width,
        osteophyte_mm=ost,
        half_depth=ref.depth_mm * scale * spec.depth_scale / 2.0,
        half_width=ref.width_mm * scale / 2.0,
        ha=float(ha),
        hm=float(hm),
        hp=float(hp),
        upper_share=upper_share,
    )


def build_phantom(spec: PatientSpec) -> Phantom:
    """Deterministic spine geometry and ground truth of ``spec``."""
    rng = np.random.default_rng(np.random.SeedSequence([20261, spec.seed]))
    levels = (*EXTRA_ABOVE, *spec.levels, "S1")
    jitter = dict(zip(spec.levels, spec.level_jitter, strict=True))
    fracs = {f.level: f for f in spec.fractures}
    # a stream of its own (session 8's shape and endplate variety), so that every earlier draw of
    # a seed stays as it was
    rng_variety = np.random.default_rng(np.random.SeedSequence([20262, spec.seed]))
    bodies = [_body_shape(lv, spec, jitter.get(lv, 0.0), fracs.get(lv), rng, rng_variety) for lv in levels]

    # stack bodies and discs along the arc (s = 0 at the centre of C3)
    centres_s = [0.0]
    for i in range(1, len(levels)):
        gap = reference(levels[i - 1]).disc_below_mm * spec.body_scale
        gap *= 1.0 - 0.25 * min(1.0, max(0.0, (spec.age - 50) / 40.0))  # disc height falls with age
        centres_s.append(centres_s[-1] + bodies[i - 1].hp / 2 + gap + bodies[i].hp / 2)
    s_lv = dict(zip(levels, centres_s, strict=True))
    total = centres_s[-1] + 120.0  # the sacrum and coccyx continue below S1
    s = np.arange(-20.0, total, 1.0)

    # sagittal curvature (deg per mm; positive = kyphotic, i.e. the tangent turns posteriorly)
    sh = spec.shape
    kappa = (
        -18.0 * _bump(s, s_lv["C3"], s_lv["T1"])
        + sh.kyphosis_deg * _bump(s, s_lv["T2"], s_lv["T12"])
        - sh.lordosis_deg * _bump(s, s_lv["T12"], s_lv["S1"])
        + 55.0 * _bump(s, s_lv["S1"], s_lv["S1"] + 110.0)
    )
    for i, lv in enumerate(levels):
        b = bodies[i]
        wedge_deg = np.degrees(np.arctan2(b.hp - b.ha, 2 * b.half_depth))
        normal_deg = np.degrees(np.arctan2(b.hp * (1 - reference(lv).ha_hp), 2 * b.half_depth))
        extra = wedge_deg - normal_deg
        if abs(extra) > 0.5:
            kappa += extra * _bump(s, s_lv[lv] - 15.0, s_lv[lv] + 15.0)
    theta = np.radians(np.cumsum(kappa) * 1.0)
    # balance: rotate the sagittal profile so that C7 stands above the L5/S1 disc (plus a
    # patient-specific lean), as it does in a compensated spine
    i_top, i_bot = (int(np.argmin(np.abs(s - s_lv[lv]))) for lv in ("C7", "S1"))
    seg = slice(i_top, i_bot)
    dy = -np.sum(np.sin(theta[seg])) / max(1.0, np.sum(np.cos(theta[seg])))
    theta = theta + np.arctan(dy) + np.radians(sh.sagittal_offset_deg)
    # coronal tangent angle: one period of a sine, amplitude Cobb / 2
    phi = np.zeros_like(s)
    if sh.scoliosis_cobb_deg > 0:
        s0 = sh.scoliosis_apex_mm - 0.5 * sh.scoliosis_period_mm
        x = (s - s0) / sh.scoliosis_period_mm
        inside = (x >= 0) & (x <= 1)
        phi[inside] = np.radians(sh.scoliosis_cobb_deg / 2) * np.sin(2 * np.pi * x[inside])
        phi *= sh.scoliosis_side
        phi -= np.mean(phi[seg])  # coronal balance: C7 above S1
    # tangent pointing caudally: -z, turned anteriorly (-y) by theta and to the left (+x) by phi
    tangent = np.stack([np.sin(phi), -np.sin(theta) * np.cos(phi), -np.cos(theta) * np.cos(phi)], 1)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    pts = np.cumsum(tangent, axis=0)
    # place the column: C7 about 120 mm below the top of the model space, centred, 70 mm posterior
    # of the body's centre line (the renderer builds the torso around the column)
    i_c7 = int(np.argmin(np.abs(s - s_lv["C7"])))
    pts = pts - pts[i_c7] + np.array([0.0, 40.0, 0.0])
    lateral = pts[:, 0] - np.interp(s, [s[0], s[-1]], [pts[0, 0], pts[-1, 0]])

    verts = []
    for i, lv in enumerate(levels):
        k = int(np.argmin(np.abs(s - s_lv[lv])))
        e_sup = -tangent[k]
        e_ant = ANTERIOR_LPS - (ANTERIOR_LPS @ e_sup) * e_sup
        e_ant /= np.linalg.norm(e_ant)
        psi = sh.rotation_per_mm * lateral[k] if sh.scoliosis_cobb_deg > 0 else 0.0
        e_left = np.cross(e_sup, e_ant)
        e_ant, e_left = (np.cos(psi) * e_ant + np.sin(psi) * e_left,
                         -np.sin(psi) * e_ant + np.cos(psi) * e_left)
        frame = np.stack([e_ant, e_left, e_sup], axis=1)
        graded = lv in spec.levels
        hu = _level_hu(lv, spec, rng)
        if lv in fracs:
            hu += 60.0 * fracs[lv].height_loss  # compacted trabeculae look denser
        verts.append(Vertebra(
            level=lv, graded=graded, origin_lps=pts[k].copy(), frame=frame, body=bodies[i],
            trabecular_hu=float(hu), fracture=fracs.get(lv),
            has_ribs=lv.startswith("T") and int(lv[1:]) <= spec.rib_pairs,
            posterior_scale=spec.posterior_scale,
        ))
    graded_v = [v for v in verts if v.graded]
    grades = grade_spine([v.level for v in graded_v], [v.keypoints_lps for v in graded_v])
    truth = tuple(
        VertebraTruth(
            level=v.level, center_lps=v.center_lps, keypoints_lps=v.keypoints_lps,
            ha_mm=h.ha_mm, hm_mm=h.hm_mm, hp_mm=h.hp_mm, grading=g,
            trabecular_hu=v.trabecular_hu, intended=v.fracture,
        )
        for v, (h, g) in zip(graded_v, grades, strict=True)
    )
    return Phantom(spec=spec, vertebrae=tuple(verts), curve_lps=pts, truth=truth)


def _level_hu(level: str, spec: PatientSpec, rng: np.random.Generator) -> float:
    """Trabecular HU of a level: thoracic bodies a little denser than lumbar ones."""
    order = {"C": -6, "T": 0, "L": 13, "S": 19}[level[0]] + int(level[1:] or 0)
    rel = 1.0 + 0.012 * (14 - order)  # L1 (order 14) is the reference
    return float(spec.l1_hu * rel + rng.normal(0.0, 4.0))
