"""Backends: one folder per model family. Family ``__init__`` modules hold registry data only."""
