"""Render backends with one signature: reference (torch), cpu (numba), gsplat (CUDA)."""
