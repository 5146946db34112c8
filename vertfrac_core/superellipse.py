"""Point-in-body test for phantom vertebrae (used to match predictions to the truth)."""

from __future__ import annotations

import numpy as np

from vertfrac_core.phantom.shapes import superellipse_radius
from vertfrac_core.phantom.spine import Vertebra


def inside_body(v: Vertebra, point_lps: np.ndarray) -> bool:
    """True when ``point_lps`` lies inside the vertebral body of phantom vertebra ``v``."""
    a, l_, s = (np.asarray(point_lps, dtype=float) - v.origin_lps) @ v.frame
    b = v.body
    rho = superellipse_radius(np.array(a), np.array(l_), b.half_depth, b.half_width, b.exponent)
    if rho > 1.0:
        return False
    top, bot = b.plates(np.array(a), rho)
    return bool(bot <= s <= top)
