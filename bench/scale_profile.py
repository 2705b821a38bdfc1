#!/usr/bin/env python3
"""Ingest bookkeeping at volume, profiled: where a fake-encoder ingest of N small files spends its time, and the
unchanged re-ingest of this checkout against another source tree (``main``) in the same run.

Run from the repository root (the folders of ``bench/scale.py --only bookkeeping`` are reused)::

    source scripts/venv.sh && source scripts/fixture-env.sh
    python bench/scale_profile.py profile --work /tmp/scale-bench --files 10000,30000 --hnsw-threshold 5000
    git -C . archive main | tar x -C /tmp/main-src
    python bench/scale_profile.py reingest --work /tmp/scale-bench --files 30000,100000 --before-src /tmp/main-src

* **profile**: cProfile in every thread that works (the main thread, the decoding threads, the commit thread) of
  the first, unchanged and 1 %-touched ingests of a new home; per step, the functions whose call counts grow faster
  than the number of files between the first and the last size, and the largest own times. A lower
  ``--hnsw-threshold`` makes small sizes cross the switch to HNSW as 100k files do at the default.
* **reingest**: the unchanged re-ingest of ``files-N`` into the bench's home ``files-N-home`` (made by
  ``bench/scale.py --only bookkeeping``), best of 3 ingests per process, alternating this checkout and the code in
  ``--before-src`` (run as ``PYTHONPATH=SRC``), ``--rounds`` times.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import os
import pstats
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common; mmsearch: the installed one or PYTHONPATH's

from _common import use_offline_fixture

use_offline_fixture()

STEPS = ("first", "unchanged", "touched")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["profile", "reingest", "reingest-one"])
    parser.add_argument("--work", default="/tmp/mmsearch-scale")
    parser.add_argument("--files", default="10000,30000")
    parser.add_argument("--hnsw-threshold", type=int)
    parser.add_argument("--before-src", help="reingest: the other source tree (git archive main | tar x)")
    parser.add_argument("--rounds", type=int, default=2)
    return parser.parse_args(argv)


class ThreadProfiles:
    """One cProfile per thread, switched on around the wrapped functions (the work of each thread)."""

    def __init__(self) -> None:
        self.profiles: dict[int, cProfile.Profile] = {}
        self._local = threading.local()

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._local, "on", False):
                return fn(*args, **kwargs)
            profile = self.profiles.setdefault(threading.get_ident(), cProfile.Profile())
            self._local.on = True
            profile.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                profile.disable()
                self._local.on = False

        return inner

    def stats(self) -> dict[tuple[str, int, str], tuple[int, float]]:
        """(file, line, function) -> (calls, own seconds), all threads together."""
        merged: dict[tuple[str, int, str], tuple[int, float]] = {}
        for profile in self.profiles.values():
            profile.create_stats()
            for key, (_, calls, own, _, _) in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]
                before = merged.get(key, (0, 0.0))
                merged[key] = (before[0] + calls, before[1] + own)
        self.profiles.clear()
        return merged


_PROFILES: list[ThreadProfiles] = []


def _instrumented() -> ThreadProfiles:
    """The profiles of the ingest's working functions, wrapped once per process (a second wrapper would take the
    thread's profiling hook from the first)."""
    if not _PROFILES:
        from mmsearch import Engine
        from mmsearch.ingest import commit, runner

        profiles = ThreadProfiles()
        commit.BatchWriter.commit = profiles.wrap(commit.BatchWriter.commit)  # type: ignore[method-assign]
        runner.IngestRun._decoding = profiles.wrap(runner.IngestRun._decoding)  # type: ignore[method-assign]
        Engine._ingest = profiles.wrap(Engine._ingest)  # type: ignore[method-assign]
        _PROFILES.append(profiles)
    return _PROFILES[0]


def profile_ingests(work: Path, count: int, threshold: int | None) -> dict[str, Any]:
    from mmsearch import Engine

    profiles = _instrumented()
    folder, home = work / f"files-{count}", work / f"files-{count}-profile-home"
    if not (folder / ".complete").is_file():
        raise SystemExit(f"{folder} is missing: run bench/scale.py --only bookkeeping --files {count} first")
    shutil.rmtree(home, ignore_errors=True)
    options = {"hnsw_threshold": threshold} if threshold else {}
    out: dict[str, Any] = {}
    db_url = f"sqlite:///{home}/mmsearch.db"
    with Engine.open(home, model="fake:16", db_url=db_url, keyword_engine="database", **options) as engine:
        for step in STEPS:
            if step == "touched":
                now = time.time()
                for path in sorted(folder.rglob("*.png"))[::100]:
                    os.utime(path, (now, now))
            started = time.perf_counter()
            engine.ingest(folder)
            out[step] = {"wall_s": time.perf_counter() - started, "stats": profiles.stats()}
    shutil.rmtree(home, ignore_errors=True)
    return out


def _name(key: tuple[str, int, str]) -> str:
    return f"{Path(key[0]).name}:{key[1]}:{key[2]}"


def profile_report(work: Path, sizes: list[int], threshold: int | None) -> None:
    runs = {count: profile_ingests(work, count, threshold) for count in sizes}
    small, large = sizes[0], sizes[-1]
    growth = large / small
    for step in STEPS:
        a, b = runs[small][step], runs[large][step]
        print(
            f"\n== {step}: {a['wall_s']:.2f} s at {small:,} files, {b['wall_s']:.2f} s at {large:,} (load "
            f"{os.getloadavg()[0]:.1f})"
        )
        faster = sorted(
            (
                (calls / max(a["stats"].get(key, (0, 0.0))[0], 1), key, calls)
                for key, (calls, _) in b["stats"].items()
                if calls >= 100 and calls > 1.1 * growth * a["stats"].get(key, (0, 0.0))[0] > 0
            ),
            reverse=True,
        )
        print(f"calls growing faster than the files ({growth:.1f}x):")
        for ratio, key, calls in faster[:15]:
            print(f"  {ratio:5.1f}x  {calls:>9,}  {_name(key)}")
        print("largest own times at the larger size:")
        for key, (calls, own) in sorted(b["stats"].items(), key=lambda item: -item[1][1])[:12]:
            print(f"  {own:8.2f} s  {calls:>9,}  {_name(key)}")


def reingest_one(work: Path, count: int) -> None:
    """Print {"src": ..., "best_s": ...} for 3 unchanged re-ingests of files-N into its bench home."""
    import mmsearch
    from mmsearch import Engine

    folder, home = work / f"files-{count}", work / f"files-{count}-home"
    walls = []
    with Engine.open(home, model="fake:16", db_url=f"sqlite:///{home}/mmsearch.db", keyword_engine="database") as e:
        for _ in range(3):
            started = time.perf_counter()
            report = e.ingest(folder)
            walls.append(time.perf_counter() - started)
            if report.added or report.updated or report.skipped != count:
                raise SystemExit(f"{folder} is not unchanged in {home}: run bench/scale.py --only bookkeeping first")
    print(json.dumps({"src": str(Path(mmsearch.__file__).parents[1]), "best_s": round(min(walls), 2)}))


def reingest_report(work: Path, sizes: list[int], before_src: str | None, rounds: int) -> None:
    trees = [("before", before_src), ("after", None)] if before_src else [("after", None)]
    for count in sizes:
        for _ in range(rounds):
            for label, src in trees:
                env = {**os.environ, **({"PYTHONPATH": src} if src else {})}
                command = [sys.executable, __file__, "reingest-one", "--work", str(work), "--files", str(count)]
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                print(
                    f"{count:>8,} files  {label:6s} {result['best_s']:6.2f} s  ({result['src']}, load "
                    f"{os.getloadavg()[0]:.1f})",
                    flush=True,
                )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work, sizes = Path(args.work), [int(part) for part in args.files.split(",") if part]
    if args.what == "profile":
        profile_report(work, sizes, args.hnsw_threshold)
    elif args.what == "reingest":
        reingest_report(work, sizes, args.before_src, args.rounds)
    else:
        reingest_one(work, sizes[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
