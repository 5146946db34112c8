"""The population model: who the synthetic patients are and what their spines carry.

Random sampling is kept apart from the deterministic rendering it drives: :func:`sample_patient`
draws a frozen :class:`PatientSpec` from a seed; everything downstream is a pure function of it.

Model (documented so population statistics can be checked against it):

* age uniform 40-95, sex 50/50;
* L1 trabecular attenuation ``230 - 2.0 * (age - 30)`` HU in men, 8 HU lower in women and a further
  0.6 HU a year after 50 in women (so about 150 HU at 70 and 90 HU at 85 in women), with a normal spread of 25 HU (Jang et al. 2019 report 30-40 HU
  SD), floored at 35 HU;
* probability of at least one fracture (grade >= 1): women ``logistic`` from 5 % at 50 to 30 % at
  85 (:func:`fracture_probability`), men half of that; raised a little by low attenuation;
* number of fractured vertebrae 1 (60 %), 2 (25 %), 3-4 (15 %); levels drawn with weights peaking
  at T11-L2 and T7-T8; grade 1/2/3 with probabilities 0.40/0.40/0.20; type wedge/biconcave/crush
  0.55/0.25/0.20;
* variants: 11 rib pairs 3 %, 13 rib pairs (a T13) 3 %, six lumbar vertebrae (L6) 4 %;
* spine shape: thoracic kyphosis 25-70 deg (rising with age), lumbar lordosis 25-65 deg,
  scoliosis in 15 % with Cobb 10-55 deg.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from vertfrac_core.anatomy import ALL_LEVELS
from vertfrac_core.morphometry import DeformityType

_FIRST_F = ("Anna", "Maria", "Elena", "Olga", "Ines", "Grace", "Sofia", "Ruth", "Mei", "Amina")
_FIRST_M = ("Peter", "Ivan", "Jonas", "Ahmed", "Luis", "Karl", "Tomas", "Ravi", "Kenji", "Owen")
_LAST = ("Novak", "Smith", "Garcia", "Kowalski", "Okafor", "Tanaka", "Muller", "Rossi", "Haddad",
         "Larsen", "Petrov", "Silva", "Nguyen", "Cohen", "Brown")  # fmt: skip

#: relative weights of fracture sites (thoracolumbar junction and mid-thoracic peaks)
_SITE_WEIGHTS = {
    "T4": 0.3, "T5": 0.5, "T6": 0.9, "T7": 1.3, "T8": 1.4, "T9": 0.9, "T10": 0.8, "T11": 1.3,
    "T12": 2.4, "L1": 2.6, "L2": 1.5, "L3": 0.9, "L4": 0.7, "L5": 0.4,
}  # fmt: skip


@dataclass(frozen=True)
class FractureSpec:
    """An intended fracture: the generator deforms the body by ``height_loss`` of its kind."""

    level: str
    type: DeformityType
    height_loss: float  # the intended fractional loss (0.2-0.6)


@dataclass(frozen=True)
class SpineShape:
    kyphosis_deg: float  # thoracic Cobb (T4-T12)
    lordosis_deg: float  # lumbar Cobb (L1-S1)
    scoliosis_cobb_deg: float  # 0 = straight in the coronal plane
    scoliosis_apex_mm: float  # arc length from C7 to the apex of the main curve
    scoliosis_period_mm: float  # length of one full S (two curves)
    scoliosis_side: int  # +1 main curve convex to the patient's left, -1 right
    sagittal_offset_deg: float  # global forward lean of the column
    rotation_per_mm: float  # axial vertebral rotation (rad) per mm of lateral deviation


@dataclass(frozen=True)
class PatientSpec:
    """Everything that is random about one synthetic patient (frozen; renders are pure of it)."""

    seed: int
    patient_id: str
    patient_name: str
    birth_date: date
    study_date: date
    age: int
    sex: str  # "F" or "M"
    levels: tuple[str, ...]  # rendered and graded vertebrae, C7 ... L5 (with variants)
    rib_pairs: int
    l1_hu: float  # trabecular attenuation of L1 before per-level variation
    fractures: tuple[FractureSpec, ...]
    shape: SpineShape
    body_scale: float  # overall size factor (about 0.85-1.15)
    bmi: float
    contrast: bool
    metal: bool
    level_jitter: tuple[float, ...] = field(default=())  # per-level relative size jitter
    depth_scale: float = 1.0  # antero-posterior body depth relative to the reference
    posterior_scale: float = 1.0  # size of the canal and posterior elements

    @property
    def fractured(self) -> bool:
        return bool(self.fractures)


def fracture_probability(age: float, sex: str) -> float:
    """Probability of at least one vertebral fracture (grade >= 1) at ``age`` for ``sex``.

    Women: logistic through 5 % at 50 and 30 % at 85; men: half of it.
    """
    # logit(0.05) = -2.944 at 50, logit(0.30) = -0.847 at 85
    slope = (-0.847 - -2.944) / 35.0
    p = 1.0 / (1.0 + np.exp(-(-2.944 + slope * (age - 50.0))))
    return float(p if sex == "F" else 0.5 * p)


def mean_l1_hu(age: float, sex: str) -> float:
    """Expected L1 trabecular HU of the population model at ``age`` for ``sex``."""
    hu = 230.0 - 2.0 * (age - 30.0)
    if sex == "F":
        hu -= 8.0 + 0.6 * max(0.0, age - 50.0)
    return hu


def _patient_id(seed: int) -> str:
    return "PID" + hashlib.sha256(f"vertfrac-phantom-{seed}".encode()).hexdigest()[:10].upper()


def sample_patient(seed: int) -> PatientSpec:
    """Draw one patient from the population model; the same seed gives the same patient."""
    rng = np.random.default_rng(np.random.SeedSequence([20260, seed]))
    sex = "F" if rng.random() < 0.5 else "M"
    age = int(rng.integers(40, 96))
    study_date = date(2015, 1, 1) + timedelta(days=int(rng.integers(0, 11 * 365)))
    birth_date = study_date - timedelta(days=int(age * 365.25 + rng.integers(0, 365)))
    first = rng.choice(_FIRST_F if sex == "F" else _FIRST_M)
    name = f"{rng.choice(_LAST)}^{first}"

    l1_hu = float(max(35.0, mean_l1_hu(age, sex) + rng.normal(0.0, 25.0)))

    variant = rng.random()
    rib_pairs = 11 if variant < 0.03 else (13 if variant < 0.06 else 12)
    six_lumbar = rng.random() < 0.04
    thoracic = [f"T{i}" for i in range(1, rib_pairs + 1)] if rib_pairs == 13 else [
        f"T{i}" for i in range(1, 13)
    ]
    lumbar = [f"L{i}" for i in range(1, 7 if six_lumbar else 6)]
    levels = tuple(lv for lv in ALL_LEVELS if lv in ("C7", *thoracic, *lumbar))

    p_frac = fracture_probability(age, sex) * float(np.clip(1.0 + (110.0 - l1_hu) / 200.0, 0.7, 1.4))
    fractures: list[FractureSpec] = []
    if rng.random() < p_frac:
        n = 1 if rng.random() < 0.60 else (2 if rng.random() < 0.625 else int(rng.integers(3, 5)))
        sites = [lv for lv in levels if lv in _SITE_WEIGHTS]
        w = np.array([_SITE_WEIGHTS[lv] for lv in sites])
        chosen = rng.choice(len(sites), size=min(n, len(sites)), replace=False, p=w / w.sum())
        for idx in sorted(chosen):
            grade = int(rng.choice([1, 2, 3], p=[0.40, 0.40, 0.20]))
            lo, hi = {1: (0.215, 0.245), 2: (0.27, 0.38), 3: (0.43, 0.60)}[grade]
            kind = ("wedge", "biconcave", "crush")[int(rng.choice(3, p=[0.55, 0.25, 0.20]))]
            fractures.append(FractureSpec(sites[idx], DeformityType(kind), float(rng.uniform(lo, hi))))

    scoliotic = rng.random() < 0.15
    shape = SpineShape(
        kyphosis_deg=float(np.clip(rng.normal(35.0 + 0.35 * (age - 40), 9.0), 20.0, 75.0)),
        lordosis_deg=float(np.clip(rng.normal(45.0, 9.0), 22.0, 68.0)),
        scoliosis_cobb_deg=float(rng.uniform(10.0, 55.0)) if scoliotic else 0.0,
        scoliosis_apex_mm=float(rng.uniform(170.0, 330.0)),
        scoliosis_period_mm=float(rng.uniform(260.0, 420.0)),
        scoliosis_side=int(rng.choice([-1, 1])),
        sagittal_offset_deg=float(rng.normal(0.0, 3.0)),
        rotation_per_mm=float(rng.uniform(0.004, 0.012)),
    )
    return PatientSpec(
        seed=seed,
        patient_id=_patient_id(seed),
        patient_name=name,
        birth_date=birth_date,
        study_date=study_date,
        age=age,
        sex=sex,
        levels=levels,
        rib_pairs=rib_pairs,
        l1_hu=l1_hu,
        fractures=tuple(fractures),
        shape=shape,
        body_scale=float(np.clip(rng.normal(1.0 if sex == "M" else 0.93, 0.05), 0.82, 1.15)),
        bmi=float(np.clip(rng.normal(27.0, 4.5), 17.0, 42.0)),
        contrast=bool(rng.random() < 0.45),
        metal=bool(rng.random() < 0.06),
        level_jitter=tuple(float(x) for x in rng.normal(0.0, 0.025, size=len(levels))),
        # domain randomisation of proportions: real bodies vary in depth (and scanners and
        # populations in everything) more than a reference table says
        depth_scale=float(rng.uniform(0.92, 1.28)),
        posterior_scale=float(rng.uniform(0.85, 1.2)),
    )
