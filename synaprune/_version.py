"""The package version (one place; ``synaprune.__version__`` and ``run.json`` read it)."""
__version__ = "0.1.0"
