"""Fuzz targets for the decoders of network and file input (docs/security-controls.md, "Fuzzing")."""
