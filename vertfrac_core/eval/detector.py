"""`vertfrac evaluate detector|pipeline`: the paper's metrics on held-out phantoms.

* detector: straightened images of phantoms (:func:`render_detector_sample`, the true centre line
  perturbed as step 1 would give it) -> detections matched to the truth when the predicted
  centre lies inside the true body outline (sagittal polygon of the 6 keypoints);
* pipeline: full CT renders through ``analyze_volume`` (step 1 included); a prediction matches
  the true vertebra whose body contains its centre (in the body's own frame).

Reported: detection precision and recall, mean keypoint error (mm), body-centre error (mm), level
accuracy, vertebra- and patient-level ROC AUC (grade >= 1 and >= 2, score = predicted height
loss; a missed vertebra scores 0), sensitivity and specificity at grade >= 2, linearly weighted
kappa of grades.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from vertfrac_core.eval.metrics import (
    body_outline_2d,
    point_in_polygon,
    roc_auc,
    sens_spec,
    weighted_kappa,
)

log = logging.getLogger(__name__)


@dataclass
class Tally:
    n_pred: int = 0
    n_true: int = 0
    matched: int = 0
    kp_err: list[float] = field(default_factory=list)
    centre_err: list[float] = field(default_factory=list)
    level_ok: list[bool] = field(default_factory=list)
    level_conf: list[float] = field(default_factory=list)
    v_score: list[float] = field(default_factory=list)  # per true vertebra: predicted loss (0 if missed)
    v_true: list[int] = field(default_factory=list)
    v_pred_grade: list[int] = field(default_factory=list)
    p_score: list[float] = field(default_factory=list)
    p_true: list[int] = field(default_factory=list)
    p_pred: list[int] = field(default_factory=list)
    failures: int = 0

    def add_case(self, pred: list[dict], truth: list[dict], inside) -> None:
        """pred/truth: dicts with centre, keypoints, level, grade, loss; inside(pred, truth)."""
        self.n_pred += len(pred)
        self.n_true += len(truth)
        used: set[int] = set()
        scores = [0.0] * len(truth)
        grades = [0] * len(truth)
        for p in sorted(pred, key=lambda d: -d.get("score", 1.0)):
            for k, t in enumerate(truth):
                if k in used or not inside(p, t):
                    continue
                used.add(k)
                self.matched += 1
                self.kp_err.append(float(np.linalg.norm(p["keypoints"] - t["keypoints"], axis=1).mean()))
                self.centre_err.append(float(np.linalg.norm(p["centre"] - t["centre"])))
                self.level_ok.append(p["level"] == t["level"])
                self.level_conf.append(float(p.get("level_confidence", 1.0)))
                scores[k] = p["loss"]
                grades[k] = p["grade"]
                break
        for k, t in enumerate(truth):
            self.v_score.append(scores[k])
            self.v_true.append(t["grade"])
            self.v_pred_grade.append(grades[k])
        self.p_score.append(max([p["loss"] for p in pred], default=0.0))
        self.p_true.append(max([t["grade"] for t in truth], default=0))
        self.p_pred.append(max([p["grade"] for p in pred], default=0))

    def _level_calibration(self) -> dict[str, float]:
        """How far a level's confidence can be trusted: the share of found bodies whose level is
        stated with confidence >= ``CONFIDENT_LEVEL`` and the level accuracy within and outside
        that share."""
        from vertfrac_core.detect.levels import CONFIDENT_LEVEL

        ok, conf = np.array(self.level_ok, bool), np.array(self.level_conf, float)
        sure = conf >= CONFIDENT_LEVEL

        def acc(m: np.ndarray) -> float:
            return float(ok[m].mean()) if m.any() else float("nan")

        return {"level_confident_share": float(sure.mean()) if sure.size else float("nan"),
                "level_accuracy_confident": acc(sure), "level_accuracy_unsure": acc(~sure)}

    def summary(self) -> dict[str, float]:
        vt, vs = np.array(self.v_true), np.array(self.v_score)
        pt, ps = np.array(self.p_true), np.array(self.p_score)
        sens_v, spec_v = sens_spec(np.array(self.v_pred_grade) >= 2, vt >= 2)
        sens_p, spec_p = sens_spec(np.array(self.p_pred) >= 2, pt >= 2)
        return {
            "cases": len(self.p_true), "true_vertebrae": self.n_true, "predicted": self.n_pred,
            "precision": self.matched / self.n_pred if self.n_pred else float("nan"),
            "recall": self.matched / self.n_true if self.n_true else float("nan"),
            "keypoint_error_mm": float(np.mean(self.kp_err)) if self.kp_err else float("nan"),
            "centre_error_mm": float(np.mean(self.centre_err)) if self.centre_err else float("nan"),
            "level_accuracy": float(np.mean(self.level_ok)) if self.level_ok else float("nan"),
            **self._level_calibration(),
            "auc_vertebra_g1": roc_auc(vs, vt >= 1), "auc_vertebra_g2": roc_auc(vs, vt >= 2),
            "auc_patient_g1": roc_auc(ps, pt >= 1), "auc_patient_g2": roc_auc(ps, pt >= 2),
            "sensitivity_g2_vertebra": sens_v, "specificity_g2_vertebra": spec_v,
            "sensitivity_g2_patient": sens_p, "specificity_g2_patient": spec_p,
            "kappa_linear": weighted_kappa(vt, np.array(self.v_pred_grade)),
            "fractured_patients_g2": int((pt >= 2).sum()), "failures": self.failures,
        }


def _cached_or_rendered(seed: int, samples_dir: str | None):
    """The held-out sample of ``seed``: from ``samples_dir`` (``generate_samples``) when it is
    there with its centre line, else rendered now (same function, same result)."""
    from pathlib import Path

    from vertfrac_core.detect.sample import DetectorSample, render_detector_sample

    path = Path(samples_dir) / f"sample_{seed}.npz" if samples_dir else None
    if path is not None and path.exists() and "line" in np.load(path).files:
        return DetectorSample.load(path, seed)
    return render_detector_sample(seed)


def with_noise(image: np.ndarray, noise_hu: float, seed: int) -> np.ndarray:
    """``image`` with white Gaussian noise of ``noise_hu`` (seeded by ``seed``) added inside the
    scan (pixels above -1000 HU; the blank outside stays blank): a noisier scanner, dose or
    kernel than the phantom's own."""
    img = np.asarray(image, dtype=np.float32)
    if noise_hu <= 0:
        return img
    rng = np.random.default_rng([seed, 99])
    return np.where(img > -1000.0, img + rng.normal(0.0, noise_hu, img.shape).astype(np.float32), img)


def evaluate_detector(n: int, seed: int, detector, samples_dir: str | None = None,
                      noise_hu: float = 0.0) -> Tally:
    """Step 2 alone on straightened held-out phantom images (bodies fully in view; those cut by the
    field of view are ignored, as the product does not grade them). Detections are matched in the image
    (predicted centre inside the true body's sagittal outline); keypoint errors, centre errors and
    grades are measured in 3D (the straightened image bends lengths away from the centre line,
    by 10 % and more at the walls of a lordotic lumbar spine, so 2D heights cannot be graded).
    ``noise_hu`` adds white noise to every channel of each image (:func:`with_noise`)."""
    from functools import partial

    from vertfrac_core.detect.context import level_context
    from vertfrac_core.detect.model import fully_in_view
    from vertfrac_core.morphometry import grade_spine
    from vertfrac_core.reformat import Reformation

    tally = Tally()
    for s in range(seed, seed + n):
        smp = _cached_or_rendered(s, samples_dir)
        if noise_hu > 0:
            smp = replace(smp, image=with_noise(smp.image, noise_hu, s))
        ref = Reformation(smp.line_lps)
        found = detector.detect_2d(smp.image, partial(level_context, ref, profile=smp.air))
        pred = []
        if found:
            levels = [lv for _, lv, _ in found]
            kp3 = [ref.to_lps(d.keypoints_rc[:, 0], d.keypoints_rc[:, 1], 0.0) for d, _, _ in found]
            graded = grade_spine(levels, kp3)
            pred = [{"centre_rc": d.centre_rc, "centre": k.mean(axis=0), "keypoints": k, "level": lv,
                     "level_confidence": c, "score": d.score, "grade": int(g.grade), "loss": g.height_loss}
                    for (d, lv, c), k, (_, g) in zip(found, kp3, graded, strict=True)]
        # truth keypoints on the same central plane as the predictions (lateral offset dropped);
        # a body cut by the field of view is ignored: not counted as missed when absent, and a
        # prediction on it is neither a hit nor a false positive
        truth: list[dict] = []
        cut: list[dict] = []
        for k, lv, g in zip(smp.keypoints_rc, smp.levels, smp.grades, strict=True):
            k3 = ref.to_lps(k[:, 0], k[:, 1], 0.0)
            (truth if fully_in_view(smp.image[1], k) else cut).append(
                {"outline": body_outline_2d(k), "centre": k3.mean(axis=0), "keypoints": k3,
                 "level": lv, "grade": int(g)})
        pred = [p for p in pred if not any(point_in_polygon(p["centre_rc"], t["outline"]) for t in cut)]
        tally.add_case(pred, truth, lambda p, t: point_in_polygon(p["centre_rc"], t["outline"]))
        log.info("seed %d: %d true, %d predicted, matched so far %d/%d", s, len(truth), len(pred),
                 tally.matched, tally.n_true)
    return tally


def evaluate_pipeline(n: int, seed: int, models, profile: str = "full") -> Tally:
    from vertfrac_core.analyze import analyze_volume
    from vertfrac_core.eval.localizer import visible_centres
    from vertfrac_core.phantom.acquisition import sample_acquisition
    from vertfrac_core.phantom.population import sample_patient
    from vertfrac_core.phantom.render import render_ct
    from vertfrac_core.phantom.spine import build_phantom
    from vertfrac_core.result import ScanStatus

    tally = Tally()
    for s in range(seed, seed + n):
        ph = build_phantom(sample_patient(s))
        acq = sample_acquisition(ph, np.random.default_rng([s, 17]), profile)
        vol = render_ct(ph, acq, seed=s)
        res = analyze_volume(vol, source=f"phantom {s}", models=models)
        cents = np.array([t.center_lps for t in ph.truth])
        vis = visible_centres(vol, cents)
        truth = [{"centre": t.center_lps, "keypoints": t.keypoints_lps, "level": t.level,
                  "grade": int(t.grading.grade), "vertebra": ph.vertebra(t.level)}
                 for t, v in zip(ph.truth, vis, strict=True) if v]
        pred = []
        if res.status == ScanStatus.OK:
            pred = [{"centre": np.array(v.center_lps), "keypoints": np.array(v.keypoints_lps),
                     "level": v.level, "level_confidence": v.level_confidence, "score": v.score, "grade": v.grade, "loss": v.height_loss}
                    for v in res.vertebrae]
        elif truth:
            tally.failures += 1
        tally.add_case(pred, truth, lambda p, t: t["vertebra"].body_contains(p["centre"]))
        log.info("seed %d: %s, %d visible, %d predicted", s, res.status.value, len(truth), len(pred))
    return tally
