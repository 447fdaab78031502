"""Audio and subtitle passthrough: the source's packets copied into an output container, interleaved with the video.

Packets are remuxed untouched where the container takes the codec; otherwise audio is re-encoded (AAC, or Opus for
WebM) and a note says so. Subtitles the container cannot take are dropped with a note. A partial output (interrupted
run) gets the audio up to its last frame only.
"""
from __future__ import annotations

from typing import Any

from ..errors import InputError
from .oserrors import first_line

_AUDIO_FALLBACK = {".webm": "libopus"}          # everything else: aac
_NO_COPY = {".mp4": {"pcm_s16le", "pcm_s24le", "pcm_f32le", "vorbis"}, ".m4v": {"pcm_s16le", "vorbis"}}


class StreamCopier:
    """Copies the source's audio (and subtitle) packets into an output container, interleaved with the video.

    Packets are remuxed untouched where the container takes the codec; otherwise audio is re-encoded (AAC, or Opus
    for WebM) and a note says so. Subtitles the container cannot take are dropped with a note.
    """

    def __init__(self, src_path: str, out, ext: str, notes: list[str], mux=None):
        import av

        self._mux = mux or out.mux     # the sink's muxer (write errors are mapped there)

        self.notes = notes
        self.src_path = src_path
        try:
            self._inp = av.open(src_path, "r")
        except (OSError, av.error.FFmpegError) as e:
            raise InputError(f"{src_path}: cannot read its audio again ({first_line(e)}); check the file or pass "
                             "--no-audio", path=src_path) from None
        self._map: dict[int, Any] = {}         # input stream index -> output stream
        self._transcode: dict[int, Any] = {}   # input stream index -> output stream (re-encode)
        supported = set(out.supported_codecs)
        for s in list(self._inp.streams.audio) + list(self._inp.streams.subtitles):
            name = s.codec_context.name if s.codec_context else ""
            ok = name in supported and name not in _NO_COPY.get(ext, set())
            if ok:
                try:
                    o = out.add_stream_from_template(s)
                    self._map[s.index] = o
                    continue
                except (ValueError, av.error.FFmpegError):
                    pass
            if s.type == "audio":
                enc = _AUDIO_FALLBACK.get(ext, "aac")
                rate = 48000 if enc == "libopus" else (s.codec_context.sample_rate or 48000)
                o = out.add_stream(enc, rate=rate)
                try:
                    o.layout = s.codec_context.layout
                except (AttributeError, ValueError):
                    pass
                self._transcode[s.index] = o
                self.notes.append(f"audio {name} cannot go into {ext} unchanged; re-encoded to "
                                  f"{'Opus' if enc == 'libopus' else 'AAC'}")
            else:
                self.notes.append(f"subtitle stream {s.index} ({name}) cannot go into {ext}; not copied")
        streams = [self._inp.streams[i] for i in list(self._map) + list(self._transcode)]
        self._out = out
        self._iter = self._inp.demux(*streams) if streams else iter(())
        self._pending = None
        self._exhausted = False
        self.active = bool(streams)

    def _next_packet(self):
        if self._pending is not None:
            p, self._pending = self._pending, None
            return p
        if self._exhausted:
            return None
        import av

        try:
            return next(self._iter)
        except StopIteration:
            self._exhausted = True
            return None
        except (OSError, av.error.FFmpegError) as e:
            raise InputError(f"{self.src_path}: reading its audio/subtitles failed ({first_line(e)}); pass "
                             "--no-audio to skip them", path=self.src_path) from None

    def pump(self, until: float | None) -> None:
        """Mux source packets whose time is at most ``until`` seconds (None = all remaining)."""
        if not self.active:
            return
        while True:
            pkt = self._next_packet()
            if pkt is None:
                return
            if pkt.dts is None and pkt.pts is None:
                if pkt.stream.index in self._transcode:   # end of stream: drain the decoder
                    self._transcode_packet(pkt)
                continue
            t = float((pkt.pts if pkt.pts is not None else pkt.dts) * pkt.time_base)
            if until is not None and t > until:
                self._pending = pkt
                return
            idx = pkt.stream.index
            if idx in self._map:
                pkt.stream = self._map[idx]
                self._mux(pkt)
            else:
                self._transcode_packet(pkt)

    def _transcode_packet(self, pkt) -> None:
        enc = self._transcode[pkt.stream.index]
        for fr in pkt.decode():
            fr.pts = None          # the encoder numbers samples from 0 (its own priming handled by FFmpeg)
            for op in enc.encode(fr):
                self._mux(op)

    def finish(self, all_packets: bool = True) -> None:
        if not self.active:
            self.close()
            return
        if all_packets:
            self.pump(None)
        for o in self._transcode.values():
            for op in o.encode(None):
                self._mux(op)
        self.close()

    def close(self) -> None:
        try:
            self._inp.close()
        except Exception:  # noqa: BLE001
            pass
        self.active = False
