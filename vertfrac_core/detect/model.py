"""Step 2 at inference: straightened image -> vertebrae (keypoints, levels, scores) in 3D."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vertfrac_core.anatomy import GRADED_LEVELS
from vertfrac_core.detect.codec import Detection, decode
from vertfrac_core.detect.context import air_profile, floored, level_context
from vertfrac_core.detect.levels import agreed_confidence, assign_levels
from vertfrac_core.errors import ModelError
from vertfrac_core.reformat import Reformation
from vertfrac_core.volume import Volume

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "detector.pt"


@dataclass(frozen=True)
class DetectedVertebra:
    level: str
    level_confidence: float
    score: float
    keypoints_rc: np.ndarray  # (6, 2) straightened-image pixels
    keypoints_lps: np.ndarray  # (6, 3)
    center_lps: np.ndarray  # (3,)

    @classmethod
    def on_plane(cls, ref: Reformation, keypoints_rc: np.ndarray, u_mm: float = 0.0, **kw) -> DetectedVertebra:
        """A vertebra whose image keypoints lie on the plane ``u_mm`` to the side of the
        straightening plane (0: the straightening plane itself)."""
        kp3 = ref.to_lps(keypoints_rc[:, 0], keypoints_rc[:, 1], u_mm)
        return cls(keypoints_rc=keypoints_rc, keypoints_lps=kp3, center_lps=kp3.mean(axis=0), **kw)

    def moved_laterally(self, ref: Reformation, u_mm: float) -> DetectedVertebra:
        """The same image keypoints on the plane ``u_mm`` to the side of the straightening plane."""
        return DetectedVertebra.on_plane(ref, self.keypoints_rc, u_mm, level=self.level,
                                         level_confidence=self.level_confidence, score=self.score)


class Detector:
    def __init__(self, weights: Path = WEIGHTS, device: str | None = None,
                 threshold: float = 0.3, refine: bool = True, low_threshold: float = 0.08) -> None:
        import torch

        from vertfrac_core.detect.net import DetectorNet

        if not Path(weights).exists():
            raise ModelError(f"detector weights not found at {weights}; train them with "
                             "`vertfrac train detector --install`")
        try:
            st = torch.load(weights, map_location="cpu", weights_only=False)
            self.net = DetectorNet(int(st.get("width", 12)))
            self.net.load_state_dict(st["model"])
        except Exception as err:  # noqa: BLE001
            raise ModelError(f"cannot load detector weights {weights}: {err}") from err
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.net.to(self.device).eval()
        self.threshold = threshold
        self.refine = refine
        self.low_threshold = low_threshold
        self.levelnet = None
        lw = Path(weights).with_name("levels.pt")
        if lw.exists():
            from vertfrac_core.detect.levelnet import LevelNet

            try:
                self.levelnet = LevelNet()
                self.levelnet.load_state_dict(torch.load(lw, map_location="cpu", weights_only=False)["model"])
                self.levelnet.to(self.device).eval()
            except Exception as err:  # noqa: BLE001
                raise ModelError(f"cannot load level weights {lw}: {err}") from err

    def raw(self, image: np.ndarray) -> np.ndarray:
        """Network output (N_OUT, h, w), heat channel as probability."""
        import torch

        from vertfrac_core.detect.net import image_to_input

        x = torch.from_numpy(image_to_input(image))[None].to(self.device)
        # rows padded to a multiple of 16, as the training crops are (160 rows); the width is left
        # as trained (the reformat's 161 columns): padding it to 176 changed the decoder's
        # upsampling ratios and moved every keypoint about 1.9 mm posteriorly
        x = torch.nn.functional.pad(x, (0, 0, 0, (-x.shape[2]) % 16), value=-1.5)
        with torch.inference_mode():
            y = self.net(x)[0].float().cpu().numpy()
        h, w = (image.shape[1] + 1) // 2, (image.shape[2] + 1) // 2
        y = y[:, :h, :w]
        y[0] = 1.0 / (1.0 + np.exp(-y[0]))
        return y

    def row_level_probs(self, image: np.ndarray) -> np.ndarray | None:
        """Per 4 mm row, level probabilities from the sequence network (None if not shipped)."""
        if self.levelnet is None:
            return None
        import torch

        from vertfrac_core.detect.levelnet import downsample

        x = torch.from_numpy(downsample(image))[None].to(self.device)
        with torch.inference_mode():
            logits = self.levelnet(x)[0].float().cpu().numpy()
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def detect_2d(self, image: np.ndarray, context: Callable[[list[np.ndarray]], np.ndarray] | None = None,
                  ) -> list[tuple[Detection, str, float]]:
        """Detections on the straightened image with consistent levels (top to bottom).
        ``context`` maps the bodies' keypoints to per-level likelihood factors measured in the
        scan (:func:`vertfrac_core.detect.context.level_context`); the learned models'
        probabilities are floored (:func:`~vertfrac_core.detect.context.floored`) and weighed by
        them before decoding."""
        from vertfrac_core.detect.levelnet import level_probs_at

        raw = self.raw(image)
        dets = fill_gaps(decode(raw, self.threshold), decode(raw, self.low_threshold))
        dets = [d for d in dets if fully_in_view(image[1], d.keypoints_rc)]
        if not dets:
            return []
        if self.refine:
            from dataclasses import replace

            from vertfrac_core.detect.refine import refine_keypoints

            # channel 1 is the mid-sagittal slab (slabs at -4, 0, +4 mm, then the wide MIP)
            kps = refine_keypoints(image[1], [d.keypoints_rc for d in dets])
            dets = [replace(d, keypoints_rc=k.astype(np.float32), centre_rc=k.mean(axis=0).astype(np.float32))
                    for d, k in zip(dets, kps, strict=True)]
        ctx = np.ones((len(dets), len(GRADED_LEVELS))) if context is None else context(
            [d.keypoints_rc for d in dets])

        def weighed(p: np.ndarray, floor: bool = True) -> np.ndarray:
            q = (floored(p) if floor else p) * ctx
            return q / q.sum(axis=1, keepdims=True)

        head = np.stack([d.level_probs for d in dets])
        rows = self.row_level_probs(image)
        # the level is chosen on the floored models' evidence and the context; its confidence is
        # how far the models, each decoded on its own with the context but unfloored, agree with
        # it (:func:`agreed_confidence`): a level the context chose against both models is
        # stated as a guess, and the floor, which blurs a model's ranking of the levels it
        # thinks unlikely (T13 against L1), cannot make a guess look sure
        if rows is None:
            levels, _ = assign_levels(weighed(head))
            conf = agreed_confidence(levels, weighed(head, floor=False))
        else:
            seq = np.stack([level_probs_at(rows, d.keypoints_rc) for d in dets])
            probs = weighed(seq)**0.85 * weighed(head)**0.15
            levels, _ = assign_levels(probs / probs.sum(axis=1, keepdims=True))
            conf = agreed_confidence(levels, weighed(head, floor=False), weighed(seq, floor=False))
        # bodies outside the graded range (C3-C6, the sacrum) are not reported
        return [(d, lv, float(c)) for d, lv, c in zip(dets, levels, conf, strict=True)
                if lv in GRADED_LEVELS]

    def __call__(self, image: np.ndarray, ref: Reformation, volume: Volume | None = None) -> list[DetectedVertebra]:
        """Vertebrae in 3D. The bodies' heights (and, given the ``volume``, the air beside
        them) weigh their levels (:mod:`vertfrac_core.detect.context`)."""
        profile = None if volume is None else air_profile(volume, ref)
        found = self.detect_2d(image, lambda kps: level_context(ref, kps, profile))
        return [DetectedVertebra.on_plane(ref, d.keypoints_rc, level=lv, level_confidence=c, score=d.score)
                for d, lv, c in found]


def fully_in_view(mid_slab: np.ndarray, keypoints_rc: np.ndarray, margin_px: float = 1.0) -> bool:
    """False for a body cut by the field of view: a keypoint beyond the image rows, or on the
    blank (outside the scan, -1024 HU) part of the straightened image: its pixel and all eight
    around it blank. Its heights would be those of a fragment, so it is neither measured nor
    reported. (A corner on the scan's very edge is in view: which pixel it rounds to must not
    decide; VerSe 006's upper anterior corner is one.)"""
    h, w = mid_slab.shape
    r, c = keypoints_rc[:, 0], keypoints_rc[:, 1]
    if r.min() < margin_px or r.max() > h - 1 - margin_px or c.min() < 0 or c.max() > w - 1:
        return False
    ri, ci = np.clip(np.round(r).astype(int), 0, h - 1), np.clip(np.round(c).astype(int), 0, w - 1)
    scan = [mid_slab[np.clip(ri + dr, 0, h - 1), np.clip(ci + dc, 0, w - 1)] > -1000.0
            for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
    return bool(np.logical_or.reduce(scan).all())


def regular_chain(strong: list[Detection], weak: list[Detection], spread: float = 0.3,
                  max_col_px: float = 12.0, merge_px: float = 12.0) -> list[Detection]:
    """With fewer than three strong detections: the chain of weak peaks through the strongest
    one, if the column is plain in them. Peaks within ``max_col_px`` of its column, closer than
    ``merge_px`` rows merged (the higher score stays), are taken in row order; the run through
    the anchor whose gaps all lie within ``spread`` of their median gap is kept if it has three
    or more bodies. Vertebrae follow each other at a steady pitch, so a regular run of weak
    peaks is a column the detector was unsure of (a real scan unlike its phantoms), not noise;
    anything less regular leaves ``strong`` as it was."""
    if not strong:
        return strong
    anchor = max(strong, key=lambda d: d.score)
    col = float(anchor.centre_rc[1])
    cands: list[Detection] = []
    for d in sorted([*strong, *weak], key=lambda d: -d.score):
        if abs(float(d.centre_rc[1]) - col) > max_col_px:
            continue
        if all(abs(float(d.centre_rc[0]) - float(k.centre_rc[0])) >= merge_px for k in cands):
            cands.append(d)
    cands.sort(key=lambda d: float(d.centre_rc[0]))
    if len(cands) < 3:
        return strong
    rows = np.array([float(d.centre_rc[0]) for d in cands])
    i = int(np.argmin(np.abs(rows - float(anchor.centre_rc[0]))))  # the anchor (or its twin)
    gaps = np.diff(rows)
    best: tuple[int, int] = (i, i)
    for lo in range(0, i + 1):  # the longest regular run containing the anchor
        for hi in range(max(i, lo + 2), len(cands)):
            g = gaps[lo:hi]
            med = float(np.median(g))
            if np.all(np.abs(g - med) <= spread * med) and hi - lo > best[1] - best[0]:
                best = (lo, hi)
    lo, hi = best
    return cands[lo:hi + 1] if hi - lo >= 2 else strong


def fill_gaps(strong: list[Detection], weak: list[Detection], min_share: float = 0.65) -> list[Detection]:
    """``strong`` plus the weak peaks that sit in a gap of the column: at least ``min_share`` of
    the median vertebra spacing away from every kept detection along the rows, and within 12 px
    of the column line. A crushed body scores low on the heatmap (its shape is rare) but still
    fills the space between its neighbours; a weak peak next to a strong one is a duplicate.
    With fewer than three strong detections the column is first sought as a regular chain of
    weak peaks (:func:`regular_chain`)."""
    if len(strong) < 3:
        strong = regular_chain(strong, weak)
    if len(strong) < 3:
        return strong
    rows = np.array([float(d.centre_rc[0]) for d in strong])
    spacing = float(np.median(np.diff(np.sort(rows))))
    kept = list(strong)
    for d in sorted(weak, key=lambda d: -d.score):
        dist = np.abs(np.array([float(k.centre_rc[0]) for k in kept]) - float(d.centre_rc[0]))
        if dist.min() < min_share * spacing:
            continue
        nearest = np.argsort(dist)[:2]
        if abs(float(d.centre_rc[1]) - np.mean([float(kept[i].centre_rc[1]) for i in nearest])) > 12:
            continue
        kept.append(d)
    kept.sort(key=lambda d: float(d.centre_rc[0]))
    return kept


_CACHE: dict[tuple[str, str | None], Detector] = {}


def load_detector(weights: Path = WEIGHTS, device: str | None = None) -> Detector:
    key = (str(weights), device)
    if key not in _CACHE:
        _CACHE[key] = Detector(weights, device)
    return _CACHE[key]
