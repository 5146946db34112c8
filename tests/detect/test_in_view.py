"""Which detected bodies are cut by the field of view (`fully_in_view`)."""

import numpy as np

from vertfrac_core.detect.model import fully_in_view


def _body(top: float, left: float) -> np.ndarray:
    """6 keypoints of a 25 x 30 px body with its upper anterior corner at (top, left)."""
    return np.array([[top, left], [top + 25, left], [top, left + 15], [top + 25, left + 15],
                     [top, left + 30], [top + 25, left + 30]], float)


def test_a_corner_on_the_scans_edge_is_in_view_one_inside_the_blank_is_not() -> None:
    img = np.full((80, 120), 100.0, np.float32)
    img[:30, :40] = -1024.0  # the scan ends: columns 0-39 are blank above row 30
    assert fully_in_view(img, _body(20.0, 50.0))
    # rounds onto the last blank column, beside the scan: in view (VerSe 006's corner)
    assert fully_in_view(img, _body(20.0, 39.4))
    # two pixels into the blank: cut
    assert not fully_in_view(img, _body(20.0, 37.6))
    # beyond the image's rows: cut
    assert not fully_in_view(img, _body(60.0, 50.0))
