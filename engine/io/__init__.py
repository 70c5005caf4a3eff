"""Interchange formats: 3DGS PLY and friends."""
