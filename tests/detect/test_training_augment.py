"""Training-time variety for step 2: narrow fields of view for the level network, coarse voxels,
thin body shells and dense endplates in the rendered samples, body sizes in the crops."""

from __future__ import annotations

import numpy as np

from vertfrac_core.detect.levelnet import POOL
from vertfrac_core.reformat import ReformatSettings
from vertfrac_core.train.detector import sample_voxel_mm
from vertfrac_core.train.levels import narrow_fov


def test_narrow_fov_blanks_only_beyond_the_bodies() -> None:
    line = ReformatSettings().line_col / POOL
    x = np.zeros((4, 90, 41), np.float32)
    rng = np.random.default_rng(0)
    seen_front = seen_back = 0
    for _ in range(300):
        y = narrow_fov(x, rng)
        air = y[0] == -1.5
        cols = np.nonzero(air.any(axis=0))[0]
        front, back = cols[cols < line], cols[cols > line]
        # the bodies (front wall at most 30 mm anterior of the line) and the canal stay in view
        assert not air[:, int(np.floor(line - 38.0 / POOL)) + 1: int(np.ceil(line + 40.0 / POOL))].any()
        assert (y[:, ~air] == 0).all()  # nothing else is touched
        seen_front += front.size > 0
        seen_back += back.size > 0
    assert 60 < seen_front < 130 and 20 < seen_back < 70  # about 30 % and 15 %


def test_coarse_voxels_are_a_share_of_the_seeds() -> None:
    v = [sample_voxel_mm(s, 0.25) for s in range(2_000, 2_400)]
    coarse = [x for x in v if x is not None]
    assert 70 < len(coarse) < 130
    assert min(coarse) >= 1.5 and max(coarse) <= 3.0
    assert v == [sample_voxel_mm(s, 0.25) for s in range(2_000, 2_400)]  # a function of the seed
    assert all(sample_voxel_mm(s, 0.0) is None for s in range(100))


def test_body_shell_varies_between_patients() -> None:
    from vertfrac_core.phantom.population import sample_patient
    from vertfrac_core.phantom.render import _material
    from vertfrac_core.phantom.spine import build_phantom

    ph = build_phantom(sample_patient(7))
    shells = []
    for i in range(60):
        m = _material(ph, np.random.default_rng(i))
        assert 0.4 <= m.shell_mm <= 1.0 and 0.6 * m.cortex_hu <= m.shell_hu <= m.cortex_hu
        # the endplates' dense layer reaches 0.4-1.2 mm deeper than the shell, at 45-85 % of the cortex HU
        assert 0.4 <= m.plate_mm - m.shell_mm <= 1.2 and 0.45 * m.cortex_hu <= m.plate_hu <= 0.85 * m.cortex_hu
        shells.append(m.shell_mm)
    assert np.ptp(shells) > 0.45


def test_zoom_moves_keypoints_with_the_image() -> None:
    from scipy.ndimage import map_coordinates

    from vertfrac_core.train.detector import LINE_COL, _zoom

    rng = np.random.default_rng(5)
    img = np.full((4, 120, 161), -1024.0, np.float32)
    kp = np.array([[[30.0, 40.0], [55.0, 41.0], [31.0, 58.0], [54.0, 58.0], [30.0, 76.0], [55.0, 75.0]]])
    img[:, 30:56, 40:77] = 200.0 + rng.normal(0, 20, (26, 37))  # a body, corners at the keypoints
    centres = kp.mean(axis=1)
    for f in (0.85, 1.3):
        out, k2, c2 = _zoom(img, kp, centres, f)
        assert out.shape == (4, int(round(120 * f)), 161)  # the same columns, rows scaled
        # the body's extent scales about the line's column and the top row
        body = np.nonzero((out[1] > 0).any(axis=0))[0]
        assert abs(body.min() - (LINE_COL + (40 - LINE_COL) * f)) <= 1.0
        assert abs(body.max() - (LINE_COL + (76 - LINE_COL) * f)) <= 1.0
        rows = np.nonzero((out[1] > 0).any(axis=1))[0]
        assert abs(rows.min() - 30 * f) <= 1.0 and abs(rows.max() - 55 * f) <= 1.0
        np.testing.assert_allclose(k2[0, :, 0], kp[0, :, 0] * f)
        np.testing.assert_allclose(c2, k2.mean(axis=1))
        # inner points sample the same bone as before
        inner = np.array([[40.0, 55.0], [45.0, 60.0]])
        a = map_coordinates(img[1], inner.T, order=1)
        b = map_coordinates(out[1], np.stack([inner[:, 0] * f, LINE_COL + (inner[:, 1] - LINE_COL) * f]), order=1)
        np.testing.assert_allclose(a, b, atol=40.0)


def test_zoomed_training_crops_keep_targets_on_the_bodies() -> None:
    """With every crop zoomed, the encoded centres and keypoint offsets still land on the bodies
    of the crop's image (decoded back with the inference codec)."""
    from vertfrac_core.detect.codec import decode
    from vertfrac_core.train.detector import _crop

    img = np.full((4, 300, 161), -100.0, np.float32)
    kps, centres = [], []
    for top in range(20, 280, 40):  # bodies 28 px tall, 36 px deep, 12 px discs
        img[:, top:top + 28, 40:76] = 500.0
        kp = np.array([[top, 40], [top + 28, 40], [top, 58], [top + 28, 58], [top, 76], [top + 28, 76]], float)
        kps.append(kp)
        centres.append(kp.mean(axis=0))
    s = {"image": img, "keypoints": np.array(kps), "centres": np.array(centres),
         "levels": np.array(["T6", "T7", "T8", "T9", "T10", "T11", "T12"][:len(kps)])}
    rng = np.random.default_rng(1)
    for _ in range(6):
        crop, t = _crop(s, 160, rng, zoom_share=1.0, zoom_range=(0.85, 1.3))
        out = np.concatenate([t["heat"][None], t["reg"], np.zeros((1,) + t["heat"].shape, np.float32)])
        dets = decode(out, threshold=0.9)
        assert dets
        bright = crop[1] > 200.0
        for d in dets:
            r, c = np.round(d.centre_rc).astype(int)
            assert bright[r, c]
            # the corners sit on the body's edge in the zoomed image (within 1.5 px)
            for kr, kc in d.keypoints_rc[[0, 5]]:
                if not 2 <= kr < bright.shape[0] - 2:
                    continue  # a corner beyond the crop's rows
                win = bright[int(kr) - 2:int(kr) + 3, int(kc) - 2:int(kc) + 3]
                assert win.any() and not win.all()
