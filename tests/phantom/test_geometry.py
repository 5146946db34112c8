"""Phantom anatomy and ground truth: keypoints on the rendered surfaces, grades that match the
intended deformity, natural shape not called a fracture, the population model, determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vertfrac_core.anatomy import Grade
from vertfrac_core.morphometry import DeformityType
from vertfrac_core.phantom.acquisition import coarse_grid
from vertfrac_core.phantom.population import (
    FractureSpec,
    fracture_probability,
    sample_patient,
)
from vertfrac_core.phantom.render import RenderSettings, render_grid
from vertfrac_core.phantom.spine import build_phantom
from vertfrac_core.resample import sample_lps
from vertfrac_core.volume import Volume

QUIET = RenderSettings(thickness_mm=1.0, edge_mm=0.7, noise_hu=0.0, noise_corr_mm=0.5,
                       contrast=False, metal=False, prone=False)


def _lumbar_render(spec, spacing=1.0):
    ph = build_phantom(spec)
    z = [v.origin_lps[2] for v in ph.vertebrae if v.level in ("T12", "L3")]
    grid = coarse_grid(ph, spacing, (min(z) - 25, max(z) + 25), half_width_mm=120.0)
    hu = render_grid(ph, grid, replace(QUIET, thickness_mm=spacing), seed=0)
    return ph, Volume(hu=hu, affine_lps=grid.affine_lps)


def test_keypoints_lie_on_rendered_body_surface(monkeypatch) -> None:
    import vertfrac_core.phantom.render as render
    import vertfrac_core.phantom.spine as spine

    real_material = render._material
    # a thick shell (0.8 mm at 900 HU), so that "bone within 1 mm" does not hang on the texture
    monkeypatch.setattr(render, "_material", lambda ph, rng: replace(real_material(ph, rng), shell_mm=0.8,
                                                                      shell_hu=900.0))
    # no osteophytes (bone beyond the corners, by design), and a flat rim around a narrower dip
    monkeypatch.setattr(spine, "_endplate_variety", lambda spec, rng: (0.7, (0.0, 0.0)))
    spec = replace(sample_patient(3), l1_hu=240.0, fractures=(
        FractureSpec("L1", DeformityType.WEDGE, 0.35),))
    ph, vol = _lumbar_render(spec)
    checked = 0
    for v in ph.vertebrae:
        if v.level not in ("L1", "L2"):
            continue
        kp = v.keypoints_lps
        e_ant, e_sup = v.frame[:, 0], v.frame[:, 2]
        for n in range(6):
            out_dir = e_sup if n % 2 == 0 else -e_sup  # upper points face cranially
            towards_centre = -np.sign((n < 2) - (n >= 4)) * e_ant * (0.0 if 2 <= n < 4 else 1.0)
            inside = kp[n] - 1.0 * out_dir + 1.0 * towards_centre
            outside = kp[n] + 1.0 * out_dir
            hu_in, hu_out = sample_lps(vol, np.stack([inside, outside]))
            assert hu_in > 250.0, (v.level, n, hu_in)  # bone (cortex/trabecular) within 1 mm
            assert hu_out < 200.0, (v.level, n, hu_out)  # disc or soft tissue within 1 mm
            checked += 1
    assert checked == 12


def test_rendered_heights_match_truth_profile() -> None:
    """The bone extent along the body's axis at the middle keypoints equals hm within 1 voxel."""
    spec = replace(sample_patient(5), l1_hu=230.0, fractures=(
        FractureSpec("L2", DeformityType.BICONCAVE, 0.3),))
    ph, vol = _lumbar_render(spec, spacing=0.8)
    for t in ph.truth:
        if t.level not in ("L1", "L2"):
            continue
        v = ph.vertebra(t.level)
        mid = 0.5 * (t.keypoints_lps[2] + t.keypoints_lps[3])
        ts = np.arange(-25.0, 25.0, 0.1)
        prof = sample_lps(vol, mid[None, :] + ts[:, None] * v.frame[:, 2][None, :])
        inside = ts[prof > 180.0]
        inside = inside[np.abs(inside) < t.hm_mm / 2 + 4]
        measured = inside.max() - inside.min()
        assert abs(measured - t.hm_mm) < 1.0, (t.level, measured, t.hm_mm)


@pytest.mark.parametrize("seed", range(40))
def test_truth_grade_follows_intended_fracture(seed: int) -> None:
    ph = build_phantom(sample_patient(seed))
    for t in ph.truth:
        if t.intended is None:
            continue
        assert abs(t.grading.height_loss - t.intended.height_loss) < 0.06, t
        assert t.grading.grade >= Grade.MILD
        if t.intended.type == DeformityType.WEDGE:
            assert t.grading.type == DeformityType.WEDGE


def test_normal_vertebrae_are_not_called_fractures() -> None:
    """Natural wedging/concavity must not read as fracture: false positives under 1 %."""
    normal = fp = 0
    for seed in range(300):
        ph = build_phantom(sample_patient(seed))
        for t in ph.truth:
            if t.intended is None:
                normal += 1
                fp += t.grading.grade >= Grade.MILD
    assert normal > 4000
    assert fp / normal < 0.01, fp / normal


def test_population_prevalence_rises_with_age_and_is_lower_in_men() -> None:
    assert fracture_probability(50, "F") == pytest.approx(0.05, abs=1e-3)
    assert fracture_probability(85, "F") == pytest.approx(0.30, abs=1e-3)
    assert fracture_probability(85, "M") < fracture_probability(85, "F")
    specs = [sample_patient(s) for s in range(3000)]
    old_f = [s.fractured for s in specs if s.sex == "F" and s.age >= 80]
    young = [s.fractured for s in specs if s.age < 55]
    assert np.mean(old_f) > 2.5 * np.mean(young)


def test_scoliosis_cobb_angle_is_as_specified() -> None:
    found = 0
    for seed in range(200):
        spec = sample_patient(seed)
        if spec.shape.scoliosis_cobb_deg < 30:
            continue
        ph = build_phantom(spec)
        # coronal tilt of each vertebra's superior axis; Cobb = largest difference of tilts
        tilt = [np.degrees(np.arctan2(v.frame[0, 2], v.frame[2, 2])) for v in ph.vertebrae if v.graded]
        cobb = max(tilt) - min(tilt)
        assert abs(cobb - spec.shape.scoliosis_cobb_deg) < 6.0, (seed, cobb, spec.shape.scoliosis_cobb_deg)
        found += 1
    assert found >= 3


def test_same_seed_same_phantom_and_render() -> None:
    a, b = build_phantom(sample_patient(11)), build_phantom(sample_patient(11))
    assert np.array_equal(a.curve_lps, b.curve_lps)
    grid = coarse_grid(a, 4.0, (-200.0, -100.0), half_width_mm=80.0)
    r1 = render_grid(a, grid, QUIET, seed=1)
    r2 = render_grid(b, grid, QUIET, seed=1)
    assert np.array_equal(r1, r2)
    assert sample_patient(12).patient_id != sample_patient(11).patient_id


def test_variants_occur() -> None:
    specs = [sample_patient(s) for s in range(1500)]
    assert any(s.rib_pairs == 11 for s in specs)
    assert any("T13" in s.levels for s in specs)
    assert any("L6" in s.levels for s in specs)
    for s in specs[:50]:
        assert s.levels[0] == "C7" and s.levels[-1] in ("L5", "L6")


def test_dense_endplates_change_only_the_bodies(monkeypatch) -> None:
    """The endplate layer brightens the bodies just inside their endplates, and nothing else:
    not the posterior elements, not the discs, not the bodies' centres."""
    import vertfrac_core.phantom.render as render
    import vertfrac_core.phantom.spine as spine
    from vertfrac_core.phantom.shapes import superellipse_radius

    real_material = render._material
    # osteophytes are dense bone beyond the endplates' planes by design: none here
    monkeypatch.setattr(spine, "_endplate_variety", lambda spec, rng: (0.8, (0.0, 0.0)))
    spec = replace(sample_patient(4), l1_hu=150.0, fractures=())
    vols = {}
    for plate in (0.0, 1.5):
        monkeypatch.setattr(render, "_material", lambda ph, rng, p=plate: replace(
            real_material(ph, rng), shell_mm=0.6, shell_hu=700.0, plate_mm=p, plate_hu=600.0))
        ph, vols[plate] = _lumbar_render(spec)
    diff = vols[1.5].hu - vols[0.0].hu
    changed = np.argwhere(np.abs(diff) > 20.0)
    assert len(changed) > 500
    pts = vols[0.0].voxel_to_lps(changed[:, ::-1].astype(float))
    near_plate = np.zeros(len(pts), bool)
    for v in ph.vertebrae:
        rel = (pts - v.origin_lps) @ v.frame  # (a, l, s) in the body's frame
        b = v.body
        rho = superellipse_radius(rel[:, 0], rel[:, 1], b.half_depth, b.half_width, b.exponent)
        top, bot = b.plates(rel[:, 0], rho)
        inside = (np.abs(rel[:, 0]) <= b.half_depth + 1.0) & (np.abs(rel[:, 1]) <= b.half_width + 1.0)
        depth = np.minimum(top - rel[:, 2], rel[:, 2] - bot)  # below the nearer endplate
        near_plate |= inside & (depth >= -1.5) & (depth <= 1.5 + 1.5)
    assert near_plate.all(), pts[~near_plate][:5]
    # at the middle keypoints, 1 mm inside the endplate, the bone is brighter than before
    for t in ph.truth:
        if t.level == "L2":
            e_sup = ph.vertebra("L2").frame[:, 2]
            p = t.keypoints_lps[2] - 1.0 * e_sup
            assert sample_lps(vols[1.5], p[None])[0] > sample_lps(vols[0.0], p[None])[0] + 100.0


def test_endplate_variety_flat_rims_and_osteophytes(monkeypatch) -> None:
    """A narrower concavity leaves the rim flat and the keypoints where they were; an osteophyte
    is bone just beyond the anterior corner, in the disc, that no keypoint follows."""
    import vertfrac_core.phantom.render as render
    import vertfrac_core.phantom.spine as spine

    b = replace(build_phantom(sample_patient(3)).vertebra("L2").body, concavity_width=1.0)
    narrow = replace(b, concavity_width=0.6)
    assert np.allclose(narrow.keypoints_local(), b.keypoints_local())
    rim = np.array(0.8 * b.half_depth)
    top_w, bot_w = b.plates(rim, np.array(0.8))
    top_n, bot_n = narrow.plates(rim, np.array(0.8))
    assert top_n > top_w + 0.1 and bot_n < bot_w - 0.1  # flat (less deep) at the rim
    # outside the central 60 % the plates are the line through the walls: no dip at all
    assert np.allclose((top_n, bot_n), narrow.plates(rim, np.array(1.0)))

    real_material = render._material
    monkeypatch.setattr(render, "_material", lambda ph, rng: replace(real_material(ph, rng), shell_mm=0.8,
                                                                      shell_hu=900.0))
    spec = replace(sample_patient(3), l1_hu=200.0, fractures=())
    hu = {}
    for size in (0.0, 3.5):
        monkeypatch.setattr(spine, "_endplate_variety", lambda spec, rng, s=size: (0.8, (s, s)))
        ph, vol = _lumbar_render(spec)
        v = ph.vertebra("L2")
        e_ant, e_sup = v.frame[:, 0], v.frame[:, 2]
        kp = v.keypoints_lps  # anterior superior, anterior inferior first
        probes = np.stack([kp[0] + 1.5 * e_sup - 0.3 * e_ant, kp[1] - 1.5 * e_sup - 0.3 * e_ant])
        hu[size] = sample_lps(vol, probes)
        truth = next(t for t in ph.truth if t.level == "L2")
        assert np.allclose(truth.keypoints_lps, kp)
    assert np.all(hu[0.0] < 200.0), hu[0.0]  # disc
    assert np.all(hu[3.5] > 350.0), hu[3.5]  # the spur's bone


def test_normal_bodies_vary_in_shape_but_are_not_graded() -> None:
    """Normal anterior / posterior and middle / posterior ratios spread as real bodies' do (SD
    above 4 % and 2.5 % around each level's reference), and none of it is called a fracture."""
    from vertfrac_core.anatomy import reference

    ra, rm = [], []
    for seed in range(40):
        ph = build_phantom(replace(sample_patient(seed), fractures=()))
        for t in ph.truth:
            ref = reference(t.level)
            ra.append(t.ha_mm / t.hp_mm / ref.ha_hp)
            rm.append(t.hm_mm / t.hp_mm / ref.hm_hp)
            assert t.grading.grade == 0, (seed, t.level, t.ha_mm, t.hm_mm, t.hp_mm)
    assert np.std(ra) > 0.04 and np.std(rm) > 0.025, (np.std(ra), np.std(rm))
