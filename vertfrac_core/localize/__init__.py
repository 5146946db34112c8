"""Step 1: locate the vertebral column in 3D and describe it as a smooth centre line."""

from vertfrac_core.localize.model import Localizer, SpineCurve, load_localizer

__all__ = ["Localizer", "SpineCurve", "load_localizer"]
