"""Speech-to-text: a Transcriber protocol, a registry by name prefix, and the faster-whisper backend.

A speech model is named like a Whisper size (``tiny.en``, ``base``, ``small``, ``large-v3``, ...), which
faster-whisper downloads from the Hugging Face hub on first use, or a local folder holding a CTranslate2 Whisper
model (``model.bin``, ``config.json``, ``tokenizer.json``, ...), for machines without network.
``faster-whisper:NAME`` says the same explicitly; ``fake`` is a deterministic stand-in for tests (no model).

Decoding choices for the faster-whisper backend, measured with ``bench/transcribe.py`` (see bench/RESULTS.md):
- ``vad_filter=True``: Silero VAD (shipped inside the faster-whisper package, so it works offline) cuts silence
  before Whisper sees it. Same word error rate on clean speech, a little faster, and on speech surrounded by
  long silences or background noise it avoids Whisper's hallucinated segments and is several times faster.
- ``beam_size=1`` (greedy): about a quarter faster than faster-whisper's default of 5 on CPU for a small rise in
  word errors, which matters little for search.
- ``condition_on_previous_text=False``: each 30 s window is decoded on its own, so one bad window cannot start
  a repetition loop that runs through the rest of a long recording.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from mmsearch.audio.probe import describe_av_error, import_av
from mmsearch.errors import ConfigError, MissingDependencyError, UnknownModelError, UnreadableMediaError
from mmsearch.hints import install_hint
from mmsearch.textitems import Segment

DEFAULT_SPEECH_MODEL = "small"
FASTER_WHISPER = "faster-whisper"
DEFAULT_BEAM_SIZE = 1
NO_SPEECH = "no speech found"
EMPTY_AUDIO = "empty audio (zero duration)"


@dataclass(frozen=True)
class Transcript:
    """What was said in an audio file: timed segments (seconds), the language code, and the audio's seconds."""

    segments: list[Segment]
    language: str | None
    duration: float


@runtime_checkable
class Transcriber(Protocol):
    """Turns an audio file into a :class:`Transcript`.

    ``transcribe`` raises UnreadableMediaError with a one-line reason for a file it cannot decode, an empty
    one, or one in which it finds no speech. Implementations need not be thread-safe: call one from one thread.
    """

    name: str

    def transcribe(self, path: str) -> Transcript: ...


TranscriberFactory = Callable[[str, str], Transcriber]

_FACTORIES: dict[str, TranscriberFactory] = {}


def register_transcriber(prefix: str, factory: TranscriberFactory) -> None:
    """Route speech model names that start with ``prefix:`` (or are just ``prefix``) to ``factory(rest, device)``."""
    _FACTORIES[prefix] = factory


def create_transcriber(spec: str, device: str = "auto") -> Transcriber:
    """Build the transcriber a speech model name describes; anything without a known prefix is faster-whisper's.

    ``device`` is ``auto`` (CUDA when CTranslate2 sees a GPU, else CPU), ``cpu`` or ``cuda``.
    """
    spec = spec.strip()
    if not spec:
        raise UnknownModelError("empty speech model name")
    prefix, _, rest = spec.partition(":")
    if prefix in _FACTORIES:
        return _FACTORIES[prefix](rest, device)
    return _FACTORIES[FASTER_WHISPER](spec, device)


def has_words(text: str) -> bool:
    """Whether text holds anything but punctuation and spaces (Whisper emits ``" ."`` segments on noise)."""
    return any(char.isalnum() for char in text)


# -- faster-whisper -----------------------------------------------------------------------------------------------


def resolve_device(device: str, cuda_devices: Callable[[], int]) -> str:
    """Map ``auto`` to ``cuda`` when a CUDA device is visible, else ``cpu``; check ``cpu``/``cuda``."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "cpu":
        return device
    count = cuda_devices()
    if device == "cuda" and count < 1:
        raise ConfigError("device 'cuda' was asked for, but CTranslate2 sees no CUDA GPU")
    return "cuda" if count > 0 else "cpu"


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _model_argument(spec: str) -> str:
    """A local model folder as an absolute path; anything else (a size, a hub id) as given."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise UnknownModelError(f"speech model folder {spec!r} holds no model.bin (not a CTranslate2 model)")
        return str(path.resolve())
    if path.exists():
        raise UnknownModelError(f"speech model {spec!r} is a file; name a CTranslate2 model folder or a Whisper size")
    if spec.startswith(("/", "./", "../", "~")):
        raise UnknownModelError(f"speech model folder {spec!r} not found")
    return spec


class FasterWhisperTranscriber:
    """Whisper through CTranslate2: int8 on CPU, float16 on CUDA unless ``compute_type`` says otherwise.

    ``cpu_threads`` defaults to the usable cores, at most 4 (CTranslate2's own default is 4 whatever the machine,
    which oversubscribes small ones). ``language`` None lets multilingual models detect it per file.
    """

    def __init__(
        self,
        spec: str,
        device: str = "auto",
        compute_type: str | None = None,
        beam_size: int = DEFAULT_BEAM_SIZE,
        vad_filter: bool = True,
        condition_on_previous_text: bool = False,
        language: str | None = None,
        cpu_threads: int | None = None,
    ) -> None:
        if beam_size < 1:
            raise ConfigError(f"beam_size must be at least 1, not {beam_size}")
        try:
            import ctranslate2
            from faster_whisper import WhisperModel, decode_audio
        except ImportError as exc:
            hint = install_hint("audio")
            raise MissingDependencyError(f"speech-to-text needs faster-whisper: {hint} ({exc})") from exc
        model = _model_argument(spec.strip())
        self.name = f"{FASTER_WHISPER}:{model}"
        self.device = resolve_device(device, ctranslate2.get_cuda_device_count)
        self.compute_type = compute_type or ("float16" if self.device == "cuda" else "int8")
        self._decode_audio = decode_audio
        self._options: dict[str, Any] = {
            "beam_size": beam_size,
            "vad_filter": vad_filter,
            "condition_on_previous_text": condition_on_previous_text,
            "language": language,
        }
        threads = cpu_threads if cpu_threads is not None else min(_usable_cpus(), 4)
        try:
            self._model = WhisperModel(model, device=self.device, compute_type=self.compute_type, cpu_threads=threads)
        except Exception as exc:  # a bad folder, an unknown size, no network for the download, ...
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if not Path(model).is_dir():
                reason += " (a named model is downloaded on first use; offline, name a local model folder)"
            raise UnknownModelError(f"cannot load speech model {spec!r}: {reason}") from exc
        self._sampling_rate = int(self._model.feature_extractor.sampling_rate)

    def transcribe(self, path: str) -> Transcript:
        """Transcribe one file; UnreadableMediaError when it cannot be decoded, is empty or holds no speech."""
        audio = self._decode(path)
        duration = len(audio) / self._sampling_rate
        if duration <= 0:
            raise UnreadableMediaError(EMPTY_AUDIO)
        raw_segments, info = self._model.transcribe(audio, **self._options)
        segments = []
        for raw in raw_segments:  # a generator: the decoding happens here
            text = " ".join(raw.text.split())
            if has_words(text):  # Whisper's timestamps can overshoot the end of the audio: clamp them
                start = min(max(float(raw.start), 0.0), duration)
                segments.append(Segment(start, min(max(float(raw.end), start), duration), text))
        if not segments:
            raise UnreadableMediaError(NO_SPEECH)
        return Transcript(segments, info.language, duration)

    def _decode(self, path: str) -> Any:
        av = import_av()
        try:
            return self._decode_audio(path, sampling_rate=self._sampling_rate)
        except av.error.FFmpegError as exc:
            raise UnreadableMediaError(f"cannot decode audio: {describe_av_error(exc)}") from exc
        except OSError as exc:
            raise UnreadableMediaError(f"cannot read audio: {exc.strerror or exc}") from exc
        except IndexError:  # container.decode(audio=0) on a file without an audio stream
            raise UnreadableMediaError("no audio stream") from None


# -- fake ---------------------------------------------------------------------------------------------------------


class FakeTranscriber:
    """A deterministic stand-in for tests: decodes the audio (PyAV) but runs no model.

    The transcript is the file name's words (``a_dog_on_the_beach.wav`` -> ``a dog on the beach``), one segment
    over the whole file; silent audio (peak under 1/1000 of full scale) has no speech, like the real backend.
    """

    name = "fake"
    SILENCE_PEAK = 1e-3

    def transcribe(self, path: str) -> Transcript:
        av = import_av()
        import numpy as np

        samples = 0
        peak = 0.0
        rate = 0
        try:
            with av.open(path, mode="r", metadata_errors="ignore") as container:
                if not container.streams.audio:
                    raise UnreadableMediaError("no audio stream")
                for frame in container.decode(audio=0):
                    rate = frame.sample_rate
                    samples += frame.samples
                    data = frame.to_ndarray()
                    if data.size:
                        peak = max(peak, _peak(np, data))
        except av.error.FFmpegError as exc:
            raise UnreadableMediaError(f"cannot decode audio: {describe_av_error(exc)}") from exc
        if samples == 0 or rate == 0:
            raise UnreadableMediaError(EMPTY_AUDIO)
        duration = samples / rate
        text = " ".join(Path(path).stem.replace("_", " ").replace("-", " ").split())
        if peak < self.SILENCE_PEAK or not has_words(text):
            raise UnreadableMediaError(NO_SPEECH)
        return Transcript([Segment(0.0, duration, text)], "en", duration)


def _peak(np: Any, data: Any) -> float:
    """Largest absolute sample as a fraction of full scale, for integer or float PCM."""
    values = data.astype(np.float64)
    if data.dtype.kind == "u":
        half = (float(np.iinfo(data.dtype).max) + 1) / 2
        return float(np.abs(values - half).max()) / half
    if data.dtype.kind == "i":
        return float(np.abs(values).max()) / (float(np.iinfo(data.dtype).max) + 1)
    return float(np.abs(values).max())


def _faster_whisper_factory(spec: str, device: str) -> Transcriber:
    return FasterWhisperTranscriber(spec or DEFAULT_SPEECH_MODEL, device=device)


def _fake_factory(rest: str, device: str) -> Transcriber:
    return FakeTranscriber()


register_transcriber(FASTER_WHISPER, _faster_whisper_factory)
register_transcriber("fake", _fake_factory)
