"""Gaussian sets, UV sampling and binding, 3D lifting and identity sources."""
