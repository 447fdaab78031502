"""Streaming video matting: PyAV decode thread -> batched model on the device -> encode thread.

See :mod:`.pipeline` (orchestration), :mod:`.reader` (decode), :mod:`.writer` (encode, audio, verification).
"""
