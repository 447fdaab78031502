"""Shared backbones with torchvision-compatible parameter names (so official checkpoints load unchanged)."""
