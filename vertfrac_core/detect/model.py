"""Step 2 at inference: straightened image -> vertebrae (keypoints, levels, scores) in 3D."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vertfrac_core.anatomy import GRADED_LEVELS
from vertfrac_core.detect.codec import Detection, decode
from vertfrac_core.detect.levels import assign_levels
from vertfrac_core.errors import ModelError
from vertfrac_core.reformat import Reformation

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "detector.pt"
LEVEL_WEIGHTS = WEIGHTS.with_name("levels.pt")


@dataclass(frozen=True)
class DetectedVertebra:
    level: str
    level_confidence: float
    score: float
    keypoints_rc: np.ndarray  # (6, 2) straightened-image pixels
    keypoints_lps: np.ndarray  # (6, 3)
    center_lps: np.ndarray  # (3,)


class Detector:
    def __init__(self, weights: Path = WEIGHTS, device: str | None = None,
                 threshold: float = 0.3, refine: bool = True) -> None:
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
        pad = (-x.shape[2]) % 16, (-x.shape[3]) % 16
        x = torch.nn.functional.pad(x, (0, pad[1], 0, pad[0]), value=-1.5)
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

    def detect_2d(self, image: np.ndarray) -> list[tuple[Detection, str, float]]:
        """Detections on the straightened image with consistent levels (top to bottom)."""
        from vertfrac_core.detect.levelnet import level_probs_at

        dets = decode(self.raw(image), self.threshold)
        if not dets:
            return []
        if self.refine:
            from dataclasses import replace

            from vertfrac_core.detect.refine import refine_keypoints

            # channel 1 is the mid-sagittal slab (slabs at -4, 0, +4 mm, then the wide MIP)
            kps = refine_keypoints(image[1], [d.keypoints_rc for d in dets])
            dets = [replace(d, keypoints_rc=k.astype(np.float32), centre_rc=k.mean(axis=0).astype(np.float32))
                    for d, k in zip(dets, kps, strict=True)]
        probs = np.stack([d.level_probs for d in dets])
        rows = self.row_level_probs(image)
        if rows is not None:
            seq = np.stack([level_probs_at(rows, d.keypoints_rc) for d in dets])
            probs = seq**0.85 * probs**0.15
            probs /= probs.sum(axis=1, keepdims=True)
        levels, conf = assign_levels(probs)
        # bodies outside the graded range (C3-C6, the sacrum) are not reported
        return [(d, lv, float(c)) for d, lv, c in zip(dets, levels, conf, strict=True)
                if lv in GRADED_LEVELS]

    def __call__(self, image: np.ndarray, ref: Reformation) -> list[DetectedVertebra]:
        out = []
        for d, lv, c in self.detect_2d(image):
            kp3 = ref.to_lps(d.keypoints_rc[:, 0], d.keypoints_rc[:, 1], 0.0)
            out.append(DetectedVertebra(level=lv, level_confidence=c, score=d.score,
                                        keypoints_rc=d.keypoints_rc, keypoints_lps=kp3,
                                        center_lps=kp3.mean(axis=0)))
        return out


_CACHE: dict[tuple[str, str | None], Detector] = {}


def load_detector(weights: Path = WEIGHTS, device: str | None = None) -> Detector:
    key = (str(weights), device)
    if key not in _CACHE:
        _CACHE[key] = Detector(weights, device)
    return _CACHE[key]
