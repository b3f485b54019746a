"""Stand-in for trellis.utils (see trellis/__init__.py)."""
