"""Decode and encode images on a Ray cluster (``ingest --executor ray [--ray-address ADDR]``, ``mmsearch[ray]``).

Only the embedding of new and changed images moves: the plan (scan, diff against the database, hashing of known
files) stays on the driver, and so does every database write. Per batch of files:

* a Ray **task** (any CPU worker) reads the files, hashes their bytes, reads their embedded captions and capture
  time, and decodes them at reduced size: a per-file error is returned, not raised;
* an **encoder actor** (one model per actor; one actor per GPU, or on CPUs as many as asked) receives the task's
  result straight from the object store (the pixels never pass through the driver), preprocesses and encodes it;
* the driver takes the results **in order** and hands them to the same batch commit path as the local executor,
  so incremental sync, per-file errors and crash safety are exactly the local ones.

A worker that dies (killed, OOM, a lost node) costs a retry, not a batch: tasks are retried by Ray
(``max_retries``) and actors restarted with their calls replayed (``max_restarts``/``max_task_retries``). As the
driver commits each batch once, when its result arrives, a retried batch is neither lost nor written twice.
Ray core only (tasks, actors, the object store): no scheduler of ours.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from mmsearch.errors import MissingDependencyError, MmsearchError
from mmsearch.hints import install_hint
from mmsearch.ingest.commit import Probe
from mmsearch.ingest.reading import MAX_IMAGE_FILE_BYTES, decode_whole, read_whole
from mmsearch.ingest.scanner import ScannedFile

RETRIES = 3
"""Times a batch is retried after its worker died."""

CPU_STREAMS = 2
"""Batches an actor on a CPU-only cluster encodes at once (on threads, torch's threads shared out): as the local
executor's ``parallel_batches``, which is ~15-20 % faster than one batch on every thread."""

EncoderRecipe = Callable[[str, str], Any]
"""``(model name, device) -> Encoder``, picklable: how each actor loads its own model."""


@dataclass(frozen=True)
class ClusterError(MmsearchError):
    """A batch failed on the cluster even after its retries (or Ray could not start)."""


@dataclass(frozen=True)
class Decoded:
    """A decoding task's result for one file: its probe and pixels (RGB, uint8), or why it could not be read."""

    path: str
    probe: Probe | None = None
    pixels: np.ndarray | None = None
    error: str | None = None


@dataclass
class EncodedBatch:
    """What comes back to the driver for one batch: (path, probe) of each encoded file with its vector, in the
    order given, and (path, reason) of each file that failed."""

    encoded: list[tuple[str, Probe]] = field(default_factory=list)
    vectors: np.ndarray | None = None
    failed: list[tuple[str, str]] = field(default_factory=list)


def decode_files(paths: Sequence[str], max_pixels: int, min_size: tuple[int, int] | None) -> list[Decoded]:
    """Read, hash and decode each file (a Ray task's body; plain Python, tested without Ray)."""
    return [_decode(path, max_pixels, min_size) for path in paths]


def _decode(path: str, max_pixels: int, min_size: tuple[int, int] | None) -> Decoded:
    """One file read as the local ingest reads it (``read_whole``: within :data:`MAX_IMAGE_FILE_BYTES`, a vanished
    or empty file said as such) and decoded to RGB (``decode_whole``)."""
    try:
        image, probe = decode_whole(read_whole(path, MAX_IMAGE_FILE_BYTES), max_pixels, min_size)
    except MmsearchError as exc:
        return Decoded(path, error=str(exc))
    return Decoded(path, probe, np.asarray(image, dtype=np.uint8))


class BatchEncoder:
    """The body of an encoder actor: loads its own model once, then preprocesses and encodes decoded batches."""

    def __init__(self, recipe: EncoderRecipe, model: str, device: str, threads: int = 0, streams: int = 1) -> None:
        if threads < 0:  # every core of this node
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if threads > 0:
            _set_torch_threads(threads)
        self.encoder = recipe(model, device)
        if streams > 1:  # calls run on `streams` threads at once, torch's threads shared out (as the local path)
            from mmsearch.ingest.runner import parallel_batches

            self._streams = parallel_batches(self.encoder, streams)
            self._streams.__enter__()

    def ready(self) -> bool:
        """Answered once the model is loaded (the constructor has run)."""
        return True

    def encode(self, decoded: list[Decoded]) -> EncodedBatch:
        batch = EncodedBatch(
            failed=[(item.path, item.error or "not decoded") for item in decoded if item.probe is None]
        )
        ready = [(item.path, item.probe, item.pixels) for item in decoded if item.probe is not None]
        prepared = [self.encoder.prepare_image(Image.fromarray(pixels)) for _, _, pixels in ready if pixels is not None]
        batch.encoded = [(path, probe) for path, probe, pixels in ready if pixels is not None]
        batch.vectors = np.asarray(self.encoder.encode_prepared(prepared), dtype=np.float32) if ready else None
        return batch


def _set_torch_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class RayExecutor:
    """Where and how a Ray ingest runs. ``address`` None: join the Ray instance this process already started,
    else start a local one; ``actors`` 0: one per GPU the cluster has, else one (a CPU cluster)."""

    recipe: EncoderRecipe
    model: str
    device: str = "cpu"
    address: str | None = None
    actors: int = 0
    actor_threads: int = 0
    """Torch threads per actor; 0: on a cluster without GPUs every core of the actor's node (Ray would give a 1-CPU
    actor one thread, but there encoding is the work: decoding is cheap next to it), with GPUs Ray's default."""

    @contextmanager
    def session(self) -> Iterator[RaySession]:
        """Start the encoder actors and wait until each has loaded its model (apart from the embedding's time,
        as the local executor loads its model before it); they are killed on exit."""
        ray = _ray(self.address)
        gpus = int(ray.cluster_resources().get("GPU", 0)) if self.device != "cpu" else 0
        count = self.actors or max(1, gpus)
        streams = 1 if gpus else CPU_STREAMS
        actor_class = ray.remote(num_cpus=0 if gpus else 1, num_gpus=1 if gpus else 0)(BatchEncoder).options(
            max_restarts=RETRIES, max_task_retries=RETRIES, max_concurrency=streams
        )
        threads = self.actor_threads or (0 if gpus else -1)
        actors = [actor_class.remote(self.recipe, self.model, self.device, threads, streams) for _ in range(count)]
        try:
            try:
                ray.get([actor.ready.remote() for actor in actors])
            except ray.exceptions.RayError as exc:
                raise ClusterError(f"the encoder actors did not start on the Ray cluster: {exc}") from exc
            yield RaySession(ray, actors)
        finally:
            for actor in actors:
                ray.kill(actor)


@dataclass(frozen=True)
class RaySession:
    """Encoder actors that are up, and what sends them batches."""

    ray: Any
    actors: list[Any]

    def embed(
        self, files: Sequence[ScannedFile], batch_size: int, max_pixels: int, min_size: tuple[int, int] | None
    ) -> Iterator[tuple[list[ScannedFile], EncodedBatch]]:
        """Encode ``files`` in batches on the cluster; yields each batch's files and result, in order."""
        ray, actors = self.ray, self.actors
        decode = ray.remote(num_cpus=1, max_retries=RETRIES)(decode_files)
        batches = [list(files[start : start + batch_size]) for start in range(0, len(files), batch_size)]
        try:
            yield from _in_order(
                ray,
                batches,
                lambda n, paths: actors[n % len(actors)].encode.remote(decode.remote(paths, max_pixels, min_size)),
                window=(CPU_STREAMS + 1) * len(actors) + 1,
            )
        except ray.exceptions.RayError as exc:
            raise ClusterError(f"a batch failed on the Ray cluster after {RETRIES} retries: {exc}") from exc


def _in_order(
    ray: Any, batches: list[list[ScannedFile]], submit: Callable[[int, list[str]], Any], window: int
) -> Iterator[tuple[list[ScannedFile], EncodedBatch]]:
    """Submit batches ``window`` ahead of the results, which are taken (and yielded) in submission order."""
    pending: deque[tuple[list[ScannedFile], Any]] = deque()
    for number, batch in enumerate(batches):
        pending.append((batch, submit(number, [file.path for file in batch])))
        if len(pending) >= window:
            done, ref = pending.popleft()
            yield done, ray.get(ref)
    while pending:
        done, ref = pending.popleft()
        yield done, ray.get(ref)


def _ray(address: str | None) -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(f"executor 'ray' needs Ray: {install_hint('ray')} ({exc})") from exc
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray
