"""Body centring: move the network's centre line onto the middle of the vertebral bodies, from
the image alone (no weights), before step 2.

The localizer network learned the column on phantoms; on real CT its line runs a few
millimetres posterior of the body centres (real bodies are deeper than most phantom bodies).
This step measures each body's walls across the line instead:

1. Every ``row_step_mm`` along the line, a cross-section perpendicular to it (the local frame
   of ``Reformation``: ``v`` posterior, ``u`` patient left) is read as two band profiles, 1 mm
   samples, not as a whole image.
2. In each cross-section, the HU profile along ``v`` through a central band, walked outward
   from the line, gives the anterior and the posterior wall: the first steep fall (the outer
   face of the cortex: fat or muscle in front, the spinal canal behind); the profile along ``u``
   a third of the way back from the front wall (clear of the rib heads and pedicles) gives the
   two side walls. The body's (or disc's) centre in that section is the middle of its walls.
   Falls, not levels, because osteoporotic bodies are inside as dark as muscle.
3. Implausible walls (body depth or width outside ``depth_mm``/``width_mm``; side walls so
   lopsided that the line would be more than ``max_side_mm`` off) are not read; every section
   then takes, per direction, the median of the ``neighbours`` measured sections nearest to it
   along the line (a window that widens where few sections could be measured, so that a few
   stray walls never decide), capped at ``max_shift_mm`` and smoothed. With fewer than
   ``min_rows`` measured sections the line is left as it is.

Where no section qualifies (a field of view without bodies, an unusual image), the line comes
back unchanged: the step can only move the line by a few millimetres, never invent one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from vertfrac_core.reformat import Reformation, ReformatSettings
from vertfrac_core.volume import Volume


@dataclass(frozen=True)
class CentringSettings:
    reach_mm: float = 32.0  # cross-sections extend this far from the line (each direction)
    band_mm: float = 5.0  # half-width of the band whose mean profile is read
    min_drop_hu: float = 25.0  # HU per mm: the least fall that counts as a wall
    depth_mm: tuple[float, float] = (14.0, 50.0)  # plausible antero-posterior body depth
    width_mm: tuple[float, float] = (18.0, 62.0)  # plausible left-right body width
    max_side_mm: float = 5.0  # side walls are read only where the line is at most this far off
    side_depth: float = 0.35  # side walls read this far back from the front wall (share of depth):
    # in front of the rib heads and pedicles, which join the body's posterior half
    neighbours: int = 9  # running median over this many measured sections nearest along the line
    max_shift_mm: float = 10.0
    smooth_mm: float = 4.0
    row_step_mm: float = 2.0  # one section every so many mm of the line
    min_rows: int = 6  # fewer measured sections: the line is left as it is
    line_smooth_mm: float = 8.0  # the line step 1 hands on is then smoothed along its length
    # (Gaussian sigma, :func:`~vertfrac_core.localize.codec.smooth_line`), centred or not


def _wall(profile: np.ndarray, centre: int, side: int, min_drop: float, reach: int) -> float | None:
    """Fractional index of the first wall met walking from ``centre`` in direction ``side``
    (+1 or -1) through a 1D HU ``profile`` (1 mm samples): the steepest point of the first
    outward fall of at least ``min_drop`` HU/mm (the outer face of the cortex; in osteoporotic
    bone the body's inside is as dark as muscle, but its cortex still ends in a fall)."""
    seg = (profile[centre:] if side > 0 else profile[centre::-1])[:reach + 1]
    fall = seg[:-1] - seg[1:]  # HU lost per outward step, between samples k and k+1
    steep = np.nonzero(fall >= min_drop)[0]
    if len(steep) == 0:
        return None
    k = int(steep[0])
    while k + 1 < len(fall) and fall[k + 1] > fall[k]:
        k += 1
    # the steepest point, refined by a parabola through the falls around it
    sub = 0.0
    if 0 < k < len(fall) - 1:
        a, b, c = fall[k - 1], fall[k], fall[k + 1]
        den = a - 2 * b + c
        sub = 0.5 * (a - c) / den if den != 0 else 0.0
    return centre + side * (k + 0.5 + float(np.clip(sub, -0.5, 0.5)))


def _band_profiles(volume: Volume, c: np.ndarray, across: np.ndarray, along: np.ndarray,
                   reach: int, band: int) -> np.ndarray:
    """(rows, 2 reach + 1) mean HU profiles: through each point ``c``, along ``along`` from
    -reach to +reach mm, averaged over a band of +-band mm across (``across``), smoothed."""
    from vertfrac_core.resample import sample_lps

    t = np.arange(-reach, reach + 1, dtype=np.float64)
    w = np.arange(-band, band + 1, dtype=np.float64)
    pts = (c[:, None, None, :] + w[None, :, None, None] * across[:, None, None, :]
           + t[None, None, :, None] * along[:, None, None, :])
    return gaussian_filter1d(sample_lps(volume, pts).mean(axis=1), 1.0, axis=1)


def body_offsets(volume: Volume, line_lps: np.ndarray, settings: CentringSettings = CentringSettings()
                 ) -> tuple[Reformation, np.ndarray, np.ndarray]:
    """(reformation of the line, arc lengths s (mm) of the sections, offsets (S, 2) as (v, u)
    mm), each NaN where a section gave no measurement of it."""
    ref = Reformation(line_lps, ReformatSettings(step_mm=1.0, margin_mm=0.0))
    s = np.linspace(0.0, ref.length_mm, int(np.ceil(ref.length_mm / settings.row_step_mm)) + 1)
    c, _, b, l_ = ref.frames(s)
    reach, band = int(settings.reach_mm), int(round(settings.band_mm))
    offsets = np.full((len(s), 2), np.nan)
    # antero-posterior profiles through a band around the line
    prof_v = _band_profiles(volume, c, l_, b, reach, band)
    mid_v = np.full(len(s), np.nan)
    side_v = np.full(len(s), np.nan)  # where the side walls are read
    for row in range(len(s)):
        front = _wall(prof_v[row], reach, -1, settings.min_drop_hu, reach)
        back = _wall(prof_v[row], reach, 1, settings.min_drop_hu, reach)
        if front is not None and back is not None and \
                settings.depth_mm[0] <= back - front <= settings.depth_mm[1]:
            mid_v[row] = 0.5 * (front + back) - reach
            side_v[row] = front + settings.side_depth * (back - front) - reach
    rows = np.nonzero(np.isfinite(mid_v))[0]
    if len(rows) == 0:
        return ref, s, offsets
    # left-right profiles in the front part of each measured section's body
    prof_u = _band_profiles(volume, c[rows] + side_v[rows, None] * b[rows], b[rows], l_[rows],
                            reach, band)
    offsets[rows, 0] = mid_v[rows]
    for i, row in enumerate(rows.tolist()):
        right = _wall(prof_u[i], reach, -1, settings.min_drop_hu, reach)
        left = _wall(prof_u[i], reach, 1, settings.min_drop_hu, reach)
        if right is None or left is None:
            continue
        # a rib head, a crus or a vessel against one side moves that wall out: lopsided walls
        # (more than the line can be off to one side) are not read
        if settings.width_mm[0] <= left - right <= settings.width_mm[1] and \
                abs((left - reach) + (right - reach)) <= 2 * settings.max_side_mm:
            offsets[row, 1] = 0.5 * (left + right) - reach
    return ref, s, offsets


def centre_on_bodies(volume: Volume, line_lps: np.ndarray,
                     settings: CentringSettings = CentringSettings()) -> np.ndarray:
    """The line moved onto the middle of the bodies (same sampling: every 1 mm, cranial first);
    unchanged where too few sections could be measured."""
    from vertfrac_core.localize.codec import densify

    line = np.asarray(line_lps, dtype=np.float64)
    if len(line) < 4:
        return line
    ref, s, offsets = body_offsets(volume, line, settings)
    ok = np.isfinite(offsets)
    if int(ok[:, 0].sum()) < settings.min_rows:
        return line
    smooth = np.zeros((len(s), 2))
    for axis in (0, 1):  # antero-posterior, then left-right, each from its own measurements
        idx = np.nonzero(ok[:, axis])[0]
        if len(idx) < settings.min_rows:
            continue
        k = min(settings.neighbours, len(idx))
        for row in range(len(s)):  # median of the k measured sections nearest along the line
            near = idx[np.argsort(np.abs(idx - row), kind="stable")[:k]]
            smooth[row, axis] = np.median(offsets[near, axis])
    smooth = np.clip(smooth, -settings.max_shift_mm, settings.max_shift_mm)
    smooth = gaussian_filter1d(smooth, settings.smooth_mm / settings.row_step_mm, axis=0, mode="nearest")
    c, _, b, l_ = ref.frames(s)
    moved = c + smooth[:, :1] * b + smooth[:, 1:] * l_
    return densify(moved, 1.0)
