"""Step 2: anchor-free detection of every vertebra as 6 keypoints on the straightened image."""

from vertfrac_core.detect.model import DetectedVertebra, Detector, load_detector

__all__ = ["DetectedVertebra", "Detector", "load_detector"]
