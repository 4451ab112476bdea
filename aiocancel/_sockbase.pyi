"""Shared C socket helpers (compiled: cysrc/aiocancel/_sockbase.pyx); no Python API."""
