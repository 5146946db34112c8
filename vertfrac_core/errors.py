"""The project's exception hierarchy. Messages say what was found, what was expected and the fix."""

from __future__ import annotations


class VertfracError(Exception):
    """Base of every error vertfrac raises on purpose."""


class InputError(VertfracError):
    """The input (a file, a series, a URL) cannot be used; the message says why."""


class DicomError(InputError):
    """A DICOM file or series cannot be read or assembled."""


class UnsupportedTransferSyntaxError(DicomError):
    """No installed decoder handles this transfer syntax."""


class GeometryError(DicomError):
    """Slices do not form a usable volume (inconsistent orientation, large gaps, ...)."""


class NoSpineError(VertfracError):
    """The scan shows no vertebral column that can be analysed."""


class ModelError(VertfracError):
    """Model weights are missing, incompatible or corrupt."""


class ConfigError(VertfracError):
    """A setting is missing or unusable (e.g. no pseudonym key outside demo mode)."""


class UnsafePathError(InputError):
    """A name taken from data or user input would leave the folder it is meant for."""


class ResourceLimitError(InputError):
    """An input would need more memory or time than the configured limits allow."""
