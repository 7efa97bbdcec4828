"""The package version (pyproject.toml reads it from textclf.__version__)."""

__version__ = "0.1.0"
