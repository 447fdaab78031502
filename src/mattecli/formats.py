"""File kinds the tool reads and writes, by extension (one list of each)."""
from __future__ import annotations

#: still images every reader accepts (decoded by content; the extension only selects files in folders and globs)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
#: still images an output may be written as
WRITE_EXTS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
#: video containers read by `video` / `eval` (PyAV) and written by `video`
VIDEO_EXTS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mxf", ".mpg", ".mpeg", ".gif")
VIDEO_WRITE_EXTS = (".mp4", ".m4v", ".mov", ".webm", ".mkv")
#: temp files of atomic writes and downloads; never inputs
TEMP_SUFFIX = ".part"


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTS)


def is_video_name(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTS)
