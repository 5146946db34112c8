"""Training samples for the detector: a phantom's straightened sagittal image and its truth.

Only a box around the column is rendered (at a random scanner grid: pixel spacing, slice
spacing and thickness as in :mod:`vertfrac_core.phantom.acquisition`), which is all the
reformation needs and a fraction of a full scan's cost. The centre line used for straightening
is the true one perturbed by smooth errors of a few millimetres, as step 1 would give, and cut
to a random field of view.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vertfrac_core.phantom.acquisition import Grid
from vertfrac_core.reformat import Reformation
from vertfrac_core.volume import Volume

#: extra channel: maximum over a wide lateral slab (ribs, transverse processes) for levels
WIDE_SLAB_MM = 32.0


@dataclass(frozen=True)
class DetectorSample:
    image: np.ndarray  # (C, H, W) float32 HU: slab channels then the wide MIP
    keypoints_rc: np.ndarray  # (N, 6, 2) (row, col) of every graded vertebra whose centre is in view
    centres_rc: np.ndarray  # (N, 2)
    levels: list[str]
    grades: np.ndarray  # (N,) truth Genant grade
    seed: int
    line_lps: np.ndarray  # (M, 3) the centre line the image was straightened along (for 3D)
    #: (2, H) air beside the column per row and its in-scan share (:func:`context.air_profile`);
    #: None in samples written before it existed
    air: np.ndarray | None = None

    def save(self, path) -> None:
        """Write to ``path`` (.npz; the image as float16) under a temporary name, then rename."""
        from pathlib import Path

        path = Path(path)
        tmp = path.with_name(f".tmp_{path.name}")
        arrays: dict[str, Any] = {
            "image": self.image.astype(np.float16), "keypoints": self.keypoints_rc,
            "centres": self.centres_rc, "levels": np.array(self.levels), "grades": self.grades,
            "line": self.line_lps}
        if self.air is not None:
            arrays["air"] = self.air
        np.savez_compressed(tmp, **arrays)
        tmp.rename(path)

    @staticmethod
    def load(path, seed: int) -> DetectorSample:
        z = np.load(path)
        return DetectorSample(image=z["image"].astype(np.float32), keypoints_rc=z["keypoints"],
                              centres_rc=z["centres"], levels=[str(x) for x in z["levels"]],
                              grades=z["grades"], seed=seed, line_lps=z["line"],
                              air=z["air"] if "air" in z.files else None)


def straightened_image(volume: Volume, ref: Reformation) -> np.ndarray:
    """(C, H, W): the reformation's slab channels plus a wide-slab maximum intensity channel."""
    slab = ref.image(volume)
    wide = ref.with_slab_offsets(tuple(np.arange(-WIDE_SLAB_MM, WIDE_SLAB_MM + 1e-9, 4.0)))
    mip = wide.image(volume).max(axis=0, keepdims=True)
    return np.concatenate([slab, mip]).astype(np.float32)


def _box_grid(line: np.ndarray, z_lo: float, z_hi: float, ps: float, dz: float) -> Grid:
    x0, x1 = line[:, 0].min() - WIDE_SLAB_MM - 8, line[:, 0].max() + WIDE_SLAB_MM + 8
    y0, y1 = line[:, 1].min() - 75, line[:, 1].max() + 95
    xs = np.arange(x0, x1, ps)
    ys = np.arange(y0, y1, ps)
    zs = np.arange(z_hi, z_lo, -dz)
    aff = np.diag([ps, ps, -dz, 1.0])
    aff[:3, 3] = [xs[0], ys[0], zs[0]]
    return Grid(xs=xs, ys=ys, zs=zs, affine_lps=aff)


def enrich_fractures(spec, rng: np.random.Generator):
    """``spec`` with 2-5 random fractures of every grade and type (fractures are ~1 % of
    vertebrae in the population model: too rare for a detector to learn their shapes from)."""
    from dataclasses import replace

    from vertfrac_core.morphometry import DeformityType
    from vertfrac_core.phantom.population import FractureSpec

    sites = [lv for lv in spec.levels if lv not in ("C7", "T1", "T2")]
    chosen = rng.choice(len(sites), size=int(rng.integers(2, 6)), replace=False)
    fr = []
    for i in sorted(chosen):
        lo, hi = ((0.2, 0.25), (0.25, 0.4), (0.4, 0.6))[int(rng.integers(0, 3))]
        kind = (DeformityType.WEDGE, DeformityType.BICONCAVE, DeformityType.CRUSH)[int(rng.integers(0, 3))]
        fr.append(FractureSpec(sites[i], kind, float(rng.uniform(lo + 0.01, hi - 0.01))))
    return replace(spec, fractures=tuple(fr))


def render_detector_sample(seed: int, enrich: bool = False, voxel_mm: float | None = None) -> DetectorSample:
    """One random phantom, scanner grid and field of view, straightened with a perturbed line;
    with ``enrich``, the phantom carries several fractures (:func:`enrich_fractures`); with
    ``voxel_mm``, the volume is an isotropic ``voxel_mm`` grid (a resampled research volume, as
    NIfTI exports at 1.5-3 mm are) instead of the scanner's own grid."""
    from vertfrac_core.detect.context import air_profile
    from vertfrac_core.localize.codec import smooth_centre_line
    from vertfrac_core.phantom.acquisition import sample_acquisition
    from vertfrac_core.phantom.population import sample_patient
    from vertfrac_core.phantom.render import render_grid, settings_for
    from vertfrac_core.phantom.spine import build_phantom

    rng = np.random.default_rng([seed, 5])
    spec = sample_patient(seed)
    if enrich:
        spec = enrich_fractures(spec, rng)
    ph = build_phantom(spec)
    acq = sample_acquisition(ph, rng, "full")
    centres_all = np.array([v.center_lps for v in ph.vertebrae])
    line = smooth_centre_line(centres_all, 1.0)
    z_hi = min(acq.z_top_mm, float(line[:, 2].max()) + 20)
    z_lo = max(acq.z_bottom_mm, float(line[:, 2].min()) - 40)
    if z_hi - z_lo < 60:  # too short to be useful: take a longer stretch
        z_hi, z_lo = float(line[:, 2].max()) + 20, float(line[:, 2].min()) - 40
    # the reformat samples every 1 mm: a finer render buys nothing but time (the slice profile
    # and the in-plane point spread of the protocol are still applied)
    if voxel_mm is None:
        grid = _box_grid(line, z_lo, z_hi, max(acq.pixel_spacing_mm, 1.0), max(acq.slice_spacing_mm, 1.25))
    else:  # resampling averages over the voxel: slice profile and point spread of about its size
        grid = _box_grid(line, z_lo, z_hi, voxel_mm, voxel_mm)
        acq = replace(acq, pixel_spacing_mm=voxel_mm, slice_thickness_mm=max(acq.slice_thickness_mm, voxel_mm),
                      slice_spacing_mm=voxel_mm, blur_mm=max(acq.blur_mm, 0.8 * voxel_mm),
                      noise_hu=acq.noise_hu / max(1.0, voxel_mm))
    hu = render_grid(ph, grid, settings_for(acq), seed)
    vol = Volume(hu=hu, affine_lps=grid.affine_lps)
    # the line step 1 would give: cut to the field of view, with smooth errors of ~1-3 mm
    inside = (line[:, 2] <= z_hi - 5) & (line[:, 2] >= z_lo + 5)
    seg = line[inside]
    s = np.arange(len(seg))
    err = np.stack([np.interp(s, np.linspace(0, len(seg), 6), rng.normal(0, 1.5, 6)) for _ in range(2)], 1)
    seg = seg + np.concatenate([err, np.zeros((len(seg), 1))], axis=1)
    ref = Reformation(seg)
    image = straightened_image(vol, ref)
    air = air_profile(vol, ref)
    kps, cents, levels, grades = [], [], [], []
    for t in ph.truth:
        if not (z_lo + 3 < t.center_lps[2] < z_hi - 3):
            continue
        kp = ref.from_lps(t.keypoints_lps)[:, :2]
        c = ref.from_lps(t.center_lps[None])[0, :2]
        if not (0 <= c[0] < image.shape[1]):
            continue
        kps.append(kp)
        cents.append(c)
        levels.append(t.level)
        grades.append(int(t.grading.grade))
    return DetectorSample(image=image, keypoints_rc=np.array(kps).reshape(-1, 6, 2),
                          centres_rc=np.array(cents).reshape(-1, 2), levels=levels,
                          grades=np.array(grades, dtype=int), seed=seed, line_lps=seg, air=air)
