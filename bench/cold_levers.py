"""Cold query A/B of issue 13's two levers, alternating query by query on one built home (bench/query_cold.py
builds it): *before* (another source tree, e.g. ``main``), *no-aside* (this tree with the speculative text
encoding switched off, ``MMSEARCH_TEXT_ASIDE=0``: only the FAISS-free flat search) and *after* (this tree).

    source scripts/venv.sh && source scripts/fixture-env.sh && unset PYTHONDONTWRITEBYTECODE
    mkdir -p /tmp/main-src && git archive main | tar x -C /tmp/main-src
    python bench/cold_levers.py --home /tmp/cold-300 --before-src /tmp/main-src --rounds 15

Each query is a new ``mmsearch query TEXT --json --no-service`` process with a DEV caption never asked before;
prints wall and CPU (user + system) p50 / min per variant and the load average around the run. Both trees are
byte-compiled first, as bench/query_cold.py does.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

from _common import DEV_CAPTIONS, repo_path
from query_cold import cold_query, compile_sources, read_captions, source_env


def one_query(home: str, text: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one cold query process (``bench/query_cold.py``'s, which checks it found hits)."""
    child = cold_query(Path(home), text, env)
    return child.wall, child.cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="a home built by bench/query_cold.py (e.g. /tmp/cold-300)")
    parser.add_argument("--before-src", required=True, help="the tree to compare with (git archive main)")
    parser.add_argument("--rounds", type=int, default=15, help="queries per variant")
    args = parser.parse_args()
    compile_sources(args.before_src, None)
    texts = read_captions(repo_path(DEV_CAPTIONS))
    random.Random(time.time()).shuffle(texts)  # fresh texts on a reused home: never in its query cache
    variants = {
        "before": source_env({}, args.before_src),
        "no-aside": {"MMSEARCH_TEXT_ASIDE": "0"},
        "after": {},
    }
    # the record is written by this tree's queries; one first query makes sure it exists
    one_query(args.home, texts.pop(), dict(os.environ))
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for name, extra in variants.items():
            results[name].append(one_query(args.home, texts.pop(), {**os.environ, **extra}))
    load_after = os.getloadavg()
    print(f"home {Path(args.home)}, {args.rounds} queries per variant, alternating")
    print(f"{'variant':<10} {'wall p50':>9} {'wall min':>9} {'CPU p50':>8} {'CPU min':>8}")
    for name, runs in results.items():
        walls, cpus = [wall for wall, _ in runs], [cpu for _, cpu in runs]
        print(
            f"{name:<10} {statistics.median(walls):>9.3f} {min(walls):>9.3f} "
            f"{statistics.median(cpus):>8.3f} {min(cpus):>8.3f}"
        )
    print(f"load average {load_before[0]:.2f} -> {load_after[0]:.2f} (1 min), {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
