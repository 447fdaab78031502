"""Typer command-line interface; one module per verb. Nothing here imports torch at import time."""
