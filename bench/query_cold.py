#!/usr/bin/env python3
"""Cold query latency: ``mmsearch query TEXT`` as a new process (no service, text never queried before) over a
home of 100k indexed items, and ``mmsearch --help``.

Run from the repository root (also as ``python bench/query.py --cold ...``)::

    source scripts/venv.sh && source scripts/fixture-env.sh && python bench/query_cold.py
    python bench/query_cold.py --home /tmp/cold-home   # keep the built home there and reuse it next time
    python bench/query_cold.py --runs 9 --json

The home: the DEV photos and their captions are ingested with the fixture model (this loads torch once and
writes the verified ONNX export of the text tower, see ``mmsearch.encoders.onnx_export``); then synthetic
image items are added to the database until the image collection holds ``--items`` (paths that do not exist,
vectors = a DEV photo's vector plus noise, normalised) and the indexes are rebuilt (HNSW past the threshold).

Measured, each in a new process started from here (wall time from spawn to exit):

* ``mmsearch --home H query TEXT --json`` with ``--runs`` distinct DEV captions (none in the query cache);
* the same once with ``MMSEARCH_ONNX_TEXT=0`` (the torch path), for comparison;
* the same with ``mmsearch serve`` running on the home (the query is answered by the warm service);
* ``mmsearch --help`` (``--runs`` times);
* a breakdown of one cold query: in-process phases (imports, opening the database, loading the ONNX text
  encoder, encoding, loading the vector indexes, the rest of the search) and the slowest top-level imports
  from ``python -X importtime`` (which also tells whether torch was imported).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    DEV_CAPTIONS,
    DEV_IMAGES,
    FIXTURE_MODEL,
    CpuMonitor,
    Row,
    all_passed,
    emit,
    log,
    machine_facts,
    quiet_row,
    repo_path,
    use_offline_fixture,
)

use_offline_fixture()

COLD_TARGET_S = 1.0
HELP_TARGET_S = 0.3
MIN_COSINE = 1 - 1e-4
PHASES = r"""
import json, sys, time
started = time.perf_counter()
marks = {}

def timed(owner, name, label):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            marks[label] = marks.get(label, 0.0) + time.perf_counter() - begun
    setattr(owner, name, wrapper)

import mmsearch.cli as cli
imported_cli = time.perf_counter()
import gc
gc.disable()  # as cli.main() does before the command imports the engine
import mmsearch.engine as engine
imported_engine = time.perf_counter()
from mmsearch.encoders import onnx_text
from mmsearch.index import cache
timed(engine.Engine, "open", "open the database (connect, migrations check)")
timed(onnx_text, "load_text_encoder", "load the ONNX text encoder (import onnxruntime, session, tokenizer)")
timed(onnx_text.OnnxTextEncoder, "encode_texts", "encode the text")
timed(cache.IndexCache, "current", "load the vector indexes")
timed(engine.Engine, "search", "Engine.search in all")
timed(engine.Engine, "close", "close (write the query cache)")
try:
    cli.main()  # as the console script runs it (its garbage-collector settings included)
except SystemExit:
    pass
ended = time.perf_counter()
phases = {"import mmsearch.cli (click)": imported_cli - started,
          "import mmsearch.engine (numpy, sqlalchemy, PIL, ...)": imported_engine - imported_cli, **marks,
          "in-process total": ended - started, "torch imported": "torch" in sys.modules}
print(json.dumps(phases), file=sys.stderr)
"""


class ChildCpuMonitor(CpuMonitor):
    """A :class:`CpuMonitor` that counts the CPU of the child processes it waited for (the queries) as its own."""

    def __enter__(self) -> ChildCpuMonitor:
        self._children = _children_cpu_s()
        super().__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__(*exc_info)
        children = _children_cpu_s() - self._children
        self.own_cpu_s += children
        if self.other_share is not None and self.wall_s > 0:
            capacity = self.wall_s * len(os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else [0])
            self.other_share = max(0.0, self.other_share - children / capacity)


def _children_cpu_s() -> float:
    times = os.times()
    return times.children_user + times.children_system


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="build the home here (kept), or reuse it when it is already built")
    parser.add_argument("--items", type=int, default=100_000, help="image items in the index (default 100000)")
    parser.add_argument("--folder", default=DEV_IMAGES, help=f"photos to ingest (default {DEV_IMAGES})")
    parser.add_argument("--captions", default=DEV_CAPTIONS, help="caption manifest, also the query texts")
    parser.add_argument("--model", default=FIXTURE_MODEL, help=f"encoder (default {FIXTURE_MODEL})")
    parser.add_argument("--runs", type=int, default=7, help="cold queries (distinct texts) and --help runs")
    parser.add_argument("--torch-runs", type=int, default=1, help="cold queries on the torch path (0: none)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.items < 1 or args.torch_runs < 0:
        parser.error("--runs and --items must be at least 1, --torch-runs at least 0")
    args.folder, args.captions = repo_path(args.folder), repo_path(args.captions)
    return args


def read_captions(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        texts = (row["caption"].strip() for row in csv.DictReader(handle, delimiter="\t"))
        return list(dict.fromkeys(text for text in texts if text))


def image_count(home: Path) -> int:
    """Image vectors indexed in a built home (0 when there is none)."""
    if not (home / "mmsearch.db").is_file():
        return 0
    from mmsearch import Engine

    with Engine.open(home) as engine:
        index = engine.status().to_dict().get("index") or {}
        return int(index.get("vectors") or 0)


def build_home(home: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Ingest the photos with the model (writes the ONNX export), then pad the image collection to --items."""
    from mmsearch import Engine
    from mmsearch.kinds import IMAGE
    from mmsearch.store.records import FileRecord

    started = time.perf_counter()
    with Engine.open(home, model=args.model, device="cpu") as engine:
        log(f"ingesting {args.folder} with captions (loads torch, exports the text tower) ...")
        report = engine.ingest(args.folder, captions=[args.captions])
        model_id, _ = engine.store.active_model()
        real = np.concatenate([vectors for _, vectors in engine.store.iter_vectors(model_id, IMAGE)])
        extra = args.items - len(real)
        log(f"adding {extra} synthetic image items ...")
        rng = np.random.default_rng(0)
        for start in range(0, max(extra, 0), 5000):
            count = min(5000, extra - start)
            base = real[rng.integers(len(real), size=count)]
            vectors = base + rng.normal(0, 0.05, size=base.shape).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            records, new = [], {}
            for offset, vector in enumerate(vectors):
                number = start + offset
                digest = hashlib.blake2b(f"synthetic {number}".encode(), digest_size=32).hexdigest()
                path = str(home / "synthetic" / f"{number:07d}.jpg")
                records.append(FileRecord(path, IMAGE, 100_000 + number, 0, digest, 640, 480))
                new[digest] = vector
            engine.store.write_files(model_id, records, new)
        log("rebuilding the indexes ...")
        engine.reindex()
        status = engine.status().to_dict()
    return {"ingest": report.to_dict(), "index": status.get("index"), "build_s": round(time.perf_counter() - started)}


def mmsearch_command() -> list[str]:
    """The console script next to this Python (what users run), else ``python -m mmsearch``."""
    script = Path(sys.executable).with_name("mmsearch")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mmsearch"]


def run_wall(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return wall, done


def cold_queries(home: Path, texts: list[str], env: dict[str, str], served: bool = False) -> list[float]:
    """Wall seconds of one new ``mmsearch query`` process per text (``--no-service`` unless ``served``); each
    must return hits."""
    walls = []
    extra = [] if served else ["--no-service"]
    for text in texts:
        command = [*mmsearch_command(), "--home", str(home), "query", text, "--json", "-k", "10", *extra]
        wall, done = run_wall(command, env)
        if not json.loads(done.stdout)["hits"]:
            raise SystemExit(f"no hits for {text!r}")
        walls.append(wall)
    return walls


def served_queries(home: Path, texts: list[str], env: dict[str, str], timeout_s: float = 180.0) -> list[float]:
    """:func:`cold_queries` while ``mmsearch serve`` runs on the home (started here, stopped after)."""
    from mmsearch.service.protocol import SERVICE_FILE

    (home / SERVICE_FILE).unlink(missing_ok=True)
    server = subprocess.Popen(
        [*mmsearch_command(), "--home", str(home), "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not (home / SERVICE_FILE).is_file():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"mmsearch serve did not start: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.1)
        return cold_queries(home, texts, env, served=True)
    finally:
        server.terminate()
        server.wait(30)


def import_breakdown(home: Path, text: str, env: dict[str, str], top: int = 12) -> dict[str, Any]:
    """Top-level imports of one cold query by cumulative time (``-X importtime``), and whether torch was one."""
    command = [sys.executable, "-X", "importtime", "-m", "mmsearch", "--home", str(home), "query", text, "--json"]
    command.append("--no-service")
    _, done = run_wall(command, env)
    modules: dict[str, int] = {}
    top_level: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        cumulative_us, name = int(parts[1]), parts[2]
        modules[name.strip()] = cumulative_us
        if not name.startswith("  "):  # depth 0 (" name"): not imported by another module's import
            top_level.append((cumulative_us, name.strip()))
    top_level.sort(reverse=True)
    return {
        "torch_imported": "torch" in modules,
        "open_clip_imported": "open_clip" in modules,
        "top_level_ms": {name: round(us / 1000, 1) for us, name in top_level[:top]},
    }


def phase_breakdown(home: Path, text: str, env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, "-c", PHASES, "--home", str(home), "query", text, "--json", "--no-service"]
    wall, done = run_wall(command, env)
    phases = json.loads(done.stderr.strip().splitlines()[-1])
    phases = {key: round(value * 1000, 1) if isinstance(value, float) else value for key, value in phases.items()}
    phases["interpreter start-up and exit (wall - in-process)"] = round(wall * 1000 - phases["in-process total"], 1)
    phases["wall"] = round(wall * 1000, 1)
    return phases


def export_check(home: Path) -> dict[str, Any]:
    from mmsearch import Engine
    from mmsearch.encoders.onnx_text import export_dir, read_manifest

    with Engine.open(home) as engine:
        active = engine.store.active_model()
        assert active is not None
        manifest = read_manifest(export_dir(engine.settings.index_dir, active[1].fingerprint)) or {}
    return {"status": manifest.get("status"), "reason": manifest.get("reason"), **(manifest.get("check") or {})}


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_s": round(statistics.median(samples), 3),
        "min_s": round(min(samples), 3),
        "max_s": round(max(samples), 3),
    }


def measure(home: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    texts = read_captions(args.captions)
    rng = np.random.default_rng(int(time.time()))  # fresh texts on a reused home: never in its query cache
    picks = [texts[i] for i in rng.permutation(len(texts))[: 2 * args.runs + args.torch_runs + 2]]
    onnx_texts, torch_texts, served_texts, profile_texts = (
        picks[: args.runs],
        picks[args.runs : args.runs + args.torch_runs],
        picks[args.runs + args.torch_runs : 2 * args.runs + args.torch_runs],
        picks[-2:],
    )
    run_wall([*mmsearch_command(), "--help"], env)  # warm the file cache once; every run is a new process
    log(f"timing {args.runs} cold queries ...")
    with ChildCpuMonitor() as cpu:
        walls = cold_queries(home, onnx_texts, env)
    helps = [run_wall([*mmsearch_command(), "--help"], env)[0] for _ in range(args.runs)]
    result: dict[str, Any] = {"cold_query": summary(walls), "help": summary(helps), "cpu": cpu.to_dict()}
    log("breakdown ...")
    result["phases_ms"] = phase_breakdown(home, profile_texts[0], env)
    result["imports"] = import_breakdown(home, profile_texts[1], env)
    if torch_texts:
        log(f"timing {len(torch_texts)} cold queries on the torch path ...")
        torch_walls = cold_queries(home, torch_texts, {**env, "MMSEARCH_ONNX_TEXT": "0"})
        result["cold_query_torch"] = summary(torch_walls)
    log(f"timing {len(served_texts)} queries with `mmsearch serve` running ...")
    result["served_query"] = summary(served_queries(home, served_texts, env))
    result["export_check"] = export_check(home)
    return result


def table(result: dict[str, Any], items: int) -> list[Row]:
    cold, helps, check = result["cold_query"], result["help"], result["export_check"]
    torch_free = not result["imports"]["torch_imported"]
    worst = check.get("worst_cosine")
    rows = [
        Row(
            f"cold `mmsearch query` p50 ({items} items, n={cold['n']})",
            cold["p50_s"],
            "s",
            f"<= {COLD_TARGET_S}",
            cold["p50_s"] <= COLD_TARGET_S,
        ),
        Row("cold `mmsearch query` min / max", f"{cold['min_s']:.3f} / {cold['max_s']:.3f}", "s"),
        Row(
            f"`mmsearch --help` p50 (n={helps['n']})",
            helps["p50_s"],
            "s",
            f"<= {HELP_TARGET_S}",
            helps["p50_s"] <= HELP_TARGET_S,
        ),
        Row("cold query imports torch", str(not torch_free), "", "False", torch_free),
        Row(
            "ONNX vs open_clip worst cosine (export check)",
            "n/a" if worst is None else round(worst, 7),
            "",
            f">= {MIN_COSINE}",
            worst is not None and worst >= MIN_COSINE,
        ),
    ]
    if "cold_query_torch" in result:
        rows.append(
            Row("cold query on the torch path p50 (MMSEARCH_ONNX_TEXT=0)", result["cold_query_torch"]["p50_s"], "s")
        )
    rows.append(
        Row(
            f"`mmsearch query` with `mmsearch serve` running p50 (n={result['served_query']['n']})",
            result["served_query"]["p50_s"],
            "s",
        )
    )
    rows += [
        Row(f"  phase: {name}", value, "ms") for name, value in result["phases_ms"].items() if name != "torch imported"
    ]
    rows += [Row(f"  import: {name}", value, "ms") for name, value in result["imports"]["top_level_ms"].items()]
    rows.append(quiet_row("the cold queries", [result["cpu"]["other_cpu_share"]]))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scratch = None
    if args.home:
        home = Path(args.home).expanduser().resolve()
    else:
        scratch = Path(tempfile.mkdtemp(prefix="mmsearch-bench-cold-"))
        home = scratch / "home"
    try:
        build: dict[str, Any] = {"reused": True}
        if image_count(home) < args.items:
            build = build_home(home, args)
        result = measure(home, args)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    payload = {
        "benchmark": "query_cold",
        "config": {"items": args.items, "model": args.model, "runs": args.runs, "home": str(home)},
        "machine": machine_facts("cpu"),
        "build": build,
        "results": result,
        "notes": [
            "each query is a new process (the console script), with a text not in the query cache",
            "the index holds --items image vectors: the DEV photos plus synthetic ones near them",
        ],
    }
    rows = table(result, args.items)
    emit(rows, payload, args.json)
    return 1 if args.strict and not all_passed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
