"""DICOM ingest: header index, series grouping and selection, volume assembly (HU + geometry)."""
