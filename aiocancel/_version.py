"""The package version (read by setuptools at build time, without importing
aiocancel: keep it a plain literal)."""
__version__ = "0.1.0"
