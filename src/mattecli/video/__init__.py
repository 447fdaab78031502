"""Streaming video matting: decode thread -> batched model on the device -> encode thread.

Reading: :mod:`.reader` (clips: video files, image sequences via :mod:`.sequence`), :mod:`.feeds` (plates, trimaps,
composite backgrounds read in step). The run: :mod:`.pipeline` (one clip through one model), :mod:`.smoothing`,
:mod:`.frame_outputs` (outputs built on the device), :mod:`.threads` (decode/encode threads), :mod:`.job`.
Writing: :mod:`.encode_plan` (codec policy), :mod:`.sinks` (hidden per-run work files, ``.partial`` outputs kept
on interrupt; the outputs are locked meanwhile, :mod:`mattecli.batch.locks`), :mod:`.video_file`,
:mod:`.png_sequence`, :mod:`.remux` (audio/subtitles), :mod:`.readback` (verification), :mod:`.oserrors`.
The verb: :mod:`.settings`, :mod:`.clips`, :mod:`.targets`, :mod:`.command` (one batch item per clip).
"""
