"""Anatomical context of each detected body, measured in the scan: evidence on its level that
does not come from how the training phantoms look.

The two learned level models read the straightened image. With the neck, the last ribs or the
sacrum in view they count well; on a real crop without them they are sure and wrong (VerSe 005's
L1-L5 came out as T9-L1, TPTBox's L3 as T10: both bodies of lumbar size with no lung beside them).
Two plain measurements, with the same meaning on every scanner, weigh against such calls:

* **Paravertebral air.** Lung lies beside the bodies of T3-T10 in adults, and beside no lumbar
  body below L1. Measured as the share of pixels between -1000 and -500 HU in the planes 16-36 mm
  to either side of the straightening plane, from 25 mm in front of the centre line to 30 mm
  behind it, over the body's rows (pixels outside the scan are not counted). Above
  ``air_present`` (soft, a logistic of width 1.5 %) it makes L2-L6 unlikely; below it, with that
  region in the scan, T3-T10. The apex (C7-T2) and the costophrenic recess (T11-L1), which vary
  with breathing, build and emphysema, are left neutral; so is a body whose side region is mostly
  outside the scan (a narrow crop).
* **Body size.** The posterior height against the level's adult reference
  (:mod:`vertfrac_core.anatomy`, times ``size_scale``): within ``size_tolerance`` (15 %, about
  two standard deviations of a person's size) every level is as likely, beyond it the
  likelihood falls off as a Gaussian of ``size_sigma`` in log height; mixed with a ``size_floor``
  share of "anything" so that a crushed or fractured body cannot veto its level. Lumbar bodies
  are 20-30 % taller than T9-T10, cervical ones half their size: the size speaks against gross
  errors of region, not between neighbours (all bodies of a person share their size, so
  per-body evidence between neighbours would be counted once per body; with a plain Gaussian
  of sigma 0.12 the level accuracy on held-out phantoms cut to T4-T9 fell from 0.828 to 0.813).

Both enter the level decoder as a factor per body and level (:func:`context_factors`). The
learned models' probabilities are first mixed with ``model_floor`` of a uniform distribution
(:func:`floored`), so that a model that has never seen such a scan can lower a level by at most
a factor of about 200, not exclude it; with the column's anchors in view the models' evidence
still decides (the phantom evaluations' level accuracy was unchanged, ``weights/detector.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vertfrac_core.anatomy import GRADED_LEVELS, reference
from vertfrac_core.morphometry import heights_from_keypoints
from vertfrac_core.reformat import Reformation
from vertfrac_core.volume import Volume

AIR_HU = (-1000.0, -500.0)  # lung parenchyma (and air); fill outside the scan is -1024
OUTSIDE_HU = -1015.0  # below this a sampled pixel lies outside the scan


@dataclass(frozen=True)
class ContextSettings:
    lateral_mm: tuple[float, float] = (16.0, 36.0)  # |u| range of the side planes
    columns_mm: tuple[float, float] = (25.0, 30.0)  # reach anterior and posterior of the line
    air_present: float = 0.06  # share of air pixels above which lung is beside the body
    air_width: float = 0.015
    min_in_view: float = 0.5  # below this share of the side region in the scan: no air evidence
    p_air_lung_levels: float = 0.9  # P(air present | T3-T10)
    p_air_other_levels: float = 0.05  # P(air present | L2-L6)
    # a person's size is shared by all their bodies (about +-7 % in the phantoms, as in adults):
    # heights within size_tolerance (log) of the reference are all as likely as a match, so
    # that a small or tall person does not shift every level by one or two; beyond it the
    # likelihood falls with size_sigma
    size_tolerance: float = 0.15
    size_sigma: float = 0.05
    size_scale: float = 0.965  # population mean of (height / reference): men 1.0, women 0.93
    size_floor: float = 0.1
    model_floor: float = 0.1


LUNG_LEVELS = frozenset(f"T{i}" for i in range(3, 11))
NO_LUNG_LEVELS = frozenset(("L2", "L3", "L4", "L5", "L6"))
_REF_HP = np.array([reference(lv).hp_mm for lv in GRADED_LEVELS])


def air_profile(volume: Volume, ref: Reformation,
                settings: ContextSettings = ContextSettings()) -> np.ndarray:
    """(2, rows): per row of the straightened image, the share of air pixels in the side region
    and the share of that region inside the scan."""
    lo, hi = settings.lateral_mm
    side = np.arange(lo, hi + 1e-9, 4.0)
    planes = ref.with_slab_offsets(tuple(np.concatenate([-side[::-1], side])), settings.columns_mm)
    img = planes.image(volume)  # (planes, rows, cols)
    inside = img > OUTSIDE_HU
    air = inside & (img >= AIR_HU[0]) & (img <= AIR_HU[1])
    n_in = inside.sum(axis=(0, 2)).astype(float)
    share_air = np.divide(air.sum(axis=(0, 2)), n_in, out=np.zeros_like(n_in), where=n_in > 0)
    return np.stack([share_air, n_in / (inside.shape[0] * inside.shape[2])]).astype(np.float32)


def body_air(profile: np.ndarray, keypoints_rc: np.ndarray) -> tuple[float, float]:
    """(air share, in-scan share) over the rows of one body (keypoints (6, 2) row, col)."""
    r0 = int(np.clip(np.floor(keypoints_rc[:, 0].min()), 0, profile.shape[1] - 1))
    r1 = int(np.clip(np.ceil(keypoints_rc[:, 0].max()), r0 + 1, profile.shape[1]))
    share, in_view = profile[0, r0:r1], profile[1, r0:r1]
    w = in_view.sum()
    return (float((share * in_view).sum() / w) if w > 0 else 0.0), float(in_view.mean())


def context_factors(hp_mm: np.ndarray, air: np.ndarray | None = None,
                    settings: ContextSettings = ContextSettings()) -> np.ndarray:
    """(N, levels) likelihood factors of each body's level from its posterior height (mm) and,
    when given, its (air share, in-scan share) rows ``air`` (N, 2)."""
    s = settings
    hp = np.maximum(np.asarray(hp_mm, dtype=float), 1.0)
    dev = np.abs(np.log(hp[:, None] / (_REF_HP[None, :] * s.size_scale)))
    z = np.maximum(dev - s.size_tolerance, 0.0) / s.size_sigma
    f = (1.0 - s.size_floor) * np.exp(-0.5 * z**2) + s.size_floor
    if air is not None:
        air = np.asarray(air, dtype=float).reshape(len(hp), 2)
        p_yes = np.array([s.p_air_lung_levels if lv in LUNG_LEVELS else
                          s.p_air_other_levels if lv in NO_LUNG_LEVELS else 0.5 for lv in GRADED_LEVELS])
        present = 1.0 / (1.0 + np.exp(-(air[:, 0] - s.air_present) / s.air_width))
        like = present[:, None] * p_yes[None, :] + (1.0 - present[:, None]) * (1.0 - p_yes[None, :])
        # a body whose side region is mostly outside the scan tells nothing about lung
        like = np.where(air[:, 1:2] >= s.min_in_view, like, 1.0)
        f = f * like
    return f


def floored(probs: np.ndarray, floor: float = ContextSettings.model_floor) -> np.ndarray:
    """A learned model's level probabilities mixed with ``floor`` of a uniform distribution."""
    p = np.asarray(probs, dtype=float)
    return (1.0 - floor) * p + floor / p.shape[-1]


def level_context(ref: Reformation, keypoints_rc: list[np.ndarray], profile: np.ndarray | None = None,
                  settings: ContextSettings = ContextSettings()) -> np.ndarray:
    """:func:`context_factors` of bodies given by their straightened-image keypoints: posterior
    heights measured in 3D through ``ref``, air from ``profile`` (:func:`air_profile`) if given."""
    hp = np.array([heights_from_keypoints(ref.to_lps(k[:, 0], k[:, 1], 0.0)).hp_mm for k in keypoints_rc])
    air = None if profile is None else np.array([body_air(profile, k) for k in keypoints_rc])
    return context_factors(hp, air, settings)
