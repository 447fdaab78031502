"""Image I/O, trimaps, compositing and foreground estimation (numpy / OpenCV / Pillow; no torch)."""
