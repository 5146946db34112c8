"""Anatomical context of the level decoder: air beside the body and body size
(`vertfrac_core.detect.context`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vertfrac_core.anatomy import GRADED_LEVELS, reference
from vertfrac_core.detect.context import (
    air_profile,
    body_air,
    context_factors,
    floored,
    level_context,
)
from vertfrac_core.detect.levels import assign_levels
from vertfrac_core.reformat import Reformation
from vertfrac_core.volume import Volume

IDX = {lv: i for i, lv in enumerate(GRADED_LEVELS)}


def _sure_of(levels: list[str], p: float = 0.97) -> np.ndarray:
    out = np.full((len(levels), len(GRADED_LEVELS)), (1 - p) / (len(GRADED_LEVELS) - 1))
    for i, lv in enumerate(levels):
        out[i, IDX[lv]] = p
    return out


def test_size_favours_levels_of_the_measured_height() -> None:
    f = context_factors(np.array([reference("L3").hp_mm, reference("T6").hp_mm]))
    assert f[0, IDX["L3"]] > 5 * f[0, IDX["T8"]]
    assert f[1, IDX["T6"]] > 5 * f[1, IDX["L3"]]
    # a crushed body (half its height) keeps a floor: it cannot veto its own level
    crushed = context_factors(np.array([0.5 * reference("L2").hp_mm]))
    assert crushed[0, IDX["L2"]] >= 0.1


def test_air_beside_the_body_separates_chest_from_lumbar_levels() -> None:
    hp = np.array([24.0, 24.0, 24.0])
    air = np.array([[0.40, 1.0],  # lung beside it
                    [0.00, 1.0],  # none, the side region in the scan
                    [0.00, 0.2]])  # none, but the side region is mostly outside the scan
    f = context_factors(hp, air) / context_factors(hp)
    assert f[0, IDX["T7"]] > 10 * f[0, IDX["L3"]]
    assert f[1, IDX["L3"]] > 5 * f[1, IDX["T7"]]
    assert np.allclose(f[2], 1.0)  # no evidence either way
    # the apex and the costophrenic recess are neutral
    assert f[0, IDX["T12"]] == pytest.approx(f[1, IDX["T12"]])
    assert f[0, IDX["L1"]] == pytest.approx(f[1, IDX["L1"]])


def test_air_profile_measures_lung_beside_the_line_and_what_is_outside_the_scan() -> None:
    # a volume 1 mm iso, x (L) -60..60, y (P) -60..60, z (S) 0..199; the line runs along z at x=y=0
    hu = np.full((200, 121, 121), 40.0, np.float32)  # (k=z, j=y, i=x)
    hu[100:, :, :] = -850.0  # lung in the upper half (z >= 100) ...
    hu[100:, :, 45:76] = 40.0  # ... except the mediastinum, |x| <= 15
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    aff[:3, 3] = [-60.0, -60.0, 0.0]
    vol = Volume(hu=hu, affine_lps=aff)
    line = np.stack([np.zeros(181), np.zeros(181), np.arange(190.0, 9.0, -1.0)], axis=1)  # cranial first
    ref = Reformation(line)
    prof = air_profile(vol, ref)
    assert prof.shape == (2, ref.shape[1])
    row_of = lambda z: int(round(190.0 - z - ref.s_values[0]))  # noqa: E731
    assert prof[0, row_of(150)] > 0.9 and prof[1, row_of(150)] == pytest.approx(1.0)
    assert prof[0, row_of(50)] == 0.0 and prof[1, row_of(50)] == pytest.approx(1.0)
    # rows beyond the volume's top: outside the scan, not air
    assert prof[1, 0] == 0.0 and prof[0, 0] == 0.0
    kp = np.array([[row_of(160), 60], [row_of(140), 60], [row_of(160), 70], [row_of(140), 70],
                   [row_of(160), 80], [row_of(140), 80]], float)
    share, in_view = body_air(prof, kp)
    assert share > 0.9 and in_view == pytest.approx(1.0)
    # level_context: heights through the reformation (20 mm apart here), air from the profile
    f = level_context(ref, [kp], prof)
    assert f.shape == (1, len(GRADED_LEVELS)) and f[0, IDX["T5"]] > 10 * f[0, IDX["L3"]]


def test_context_overrules_level_models_that_never_saw_such_a_scan() -> None:
    """A lumbar crop (no air beside, lumbar heights) where the detector's head gives T9-L1 0.8
    and the sequence network T2-T6 0.5 (about what they gave on VerSe 005): with the models
    floored and the context applied the decoder says L1-L5. Where the models agree on a level
    that the context allows, they decide."""
    head = _sure_of(["T9", "T10", "T11", "T12", "L1"], 0.8)
    seq = _sure_of(["T2", "T3", "T4", "T5", "T6"], 0.5)
    hp = np.array([reference(lv).hp_mm for lv in ("L1", "L2", "L3", "L4", "L5")])
    ctx = context_factors(hp, np.array([[0.0, 1.0]] * 5))

    def decode(head, seq, ctx):
        h, s = floored(head) * ctx, floored(seq) * ctx
        p = s**0.85 * h**0.15
        return assign_levels(p / p.sum(1, keepdims=True))[0]

    assert decode(head, seq, ctx) == ["L1", "L2", "L3", "L4", "L5"]
    assert decode(head, seq, np.ones_like(ctx)) != ["L1", "L2", "L3", "L4", "L5"]
    lumbar = _sure_of(["L1", "L2", "L3", "L4", "L5"])
    assert decode(lumbar, lumbar, ctx) == ["L1", "L2", "L3", "L4", "L5"]
    # models agreeing on T11-L3, which the context allows (a small person's lumbar-sized T11)
    t11 = _sure_of(["T11", "T12", "L1", "L2", "L3"])
    assert decode(t11, t11, ctx) == ["T11", "T12", "L1", "L2", "L3"]


def test_real_lumbar_crops_are_not_called_thoracic() -> None:
    """VerSe 005 (L1-L5 crop) and the TPTBox crop around L3: the level models alone called them
    T9-L1 and T10. With the context every body fully in view is named a lumbar level, and
    VerSe 005's L2-L4 are right."""
    from vertfrac_core.analyze import load_models
    from vertfrac_core.eval.real import evaluate_real

    shared = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
    if not (shared / "real" / "verse").exists():
        pytest.skip(f"shared test data missing: {shared}")
    rows = [r for r in evaluate_real(shared, load_models("cpu")) if r.level != "(none)"]
    crops = [r for r in rows if "verse005" in r.case or "tptbox" in r.case]
    assert len(crops) == 4 and all(r.detected for r in crops)
    assert all(str(r.predicted_level).startswith("L") for r in crops), crops
    assert [r.predicted_level for r in crops if "verse005" in r.case] == [r.level for r in crops
                                                                         if "verse005" in r.case]


def test_detector_samples_carry_the_air_profile(tmp_path) -> None:
    """A rendered training/evaluation sample carries the air beside the column, saved and loaded
    with it: lung beside the bodies of T3-T10, none beside L2-L5 (phantom seed 1003: C7-L5)."""
    from vertfrac_core.detect.sample import DetectorSample, render_detector_sample

    smp = render_detector_sample(1003)
    assert smp.air is not None and smp.air.shape == (2, smp.image.shape[1])
    share = {lv: body_air(smp.air, k)[0] for lv, k in zip(smp.levels, smp.keypoints_rc, strict=True)}
    assert min(share[f"T{i}"] for i in range(3, 11)) > 0.15, share
    assert max(share[f"L{i}"] for i in range(2, 6)) < 0.05, share
    smp.save(tmp_path / "s.npz")
    back = DetectorSample.load(tmp_path / "s.npz", 1003)
    assert back.air is not None and np.allclose(back.air, smp.air)


@pytest.mark.slow
def test_levels_survive_pleural_effusions() -> None:
    """Whole-chest phantom (seed 3, C7-T12 in view) with every lung voxel below T6's centre
    turned into fluid (15 HU), as bilateral effusions do: "no lung" beside T7-T10 must not move
    any level (the models, with the neck in view, outweigh the air cue's factor of about 8)."""
    from vertfrac_core.analyze import analyze_volume, load_models
    from vertfrac_core.phantom.acquisition import sample_acquisition
    from vertfrac_core.phantom.population import sample_patient
    from vertfrac_core.phantom.render import render_ct
    from vertfrac_core.phantom.spine import build_phantom

    ph = build_phantom(sample_patient(3))
    vol = render_ct(ph, sample_acquisition(ph, np.random.default_rng([3, 17]), "full"), seed=3)
    z6 = next(t.center_lps[2] for t in ph.truth if t.level == "T6")
    k = np.arange(vol.shape[0])
    z = vol.voxel_to_lps(np.stack([np.zeros_like(k), np.zeros_like(k), k], 1).astype(float))[:, 2]
    hu = vol.hu.copy()
    low = hu[z < z6]
    low[(low < -500) & (low > -990)] = 15
    hu[z < z6] = low
    effusion = Volume(hu=hu, affine_lps=vol.affine_lps, meta=vol.meta)
    centres = np.array([t.center_lps for t in ph.truth])
    models = load_models("cpu")
    for v in (vol, effusion):
        res = analyze_volume(v, source="phantom 3", models=models)
        assert len(res.vertebrae) >= 12
        for b in res.vertebrae:
            truth = ph.truth[int(np.argmin(np.linalg.norm(centres - np.array(b.center_lps), axis=1)))]
            assert b.level == truth.level and b.level_confidence >= 0.75, (b.level, truth.level)
    assert (effusion.hu < -500).sum() < (vol.hu < -500).sum()  # the effusion did remove lung
