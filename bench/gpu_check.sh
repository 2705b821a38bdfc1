#!/usr/bin/env bash
# The GPU check of issue 16, ready for the day a GPU is lent: ViT-B-32 ingest images/s (all cores decoding) vs the
# raw encoder on the GPU in fp16 and bf16, the fixture model's CUDA embeddings against CPU fp32 (cosine >= 0.999),
# and the batch size and decode workers the engine chose. Prints a table and writes it to $OUT/gpu_check.txt
# (or ./gpu_check.txt). Under 5 minutes on one H100/H200. Without CUDA it says so, skips the GPU rows, still runs
# the rest, and exits 2.
#
# On a device machine (see the README, "GPU check"), whose python3 holds torch but not mmsearch's other
# dependencies, carry them and mmsearch itself as wheels. Here, before each device run (downloads wheels for
# Python 3.12 x86-64 and builds mmsearch's into .whl/, copies the fixture model into .fixture/; both git-ignored):
#     bench/gpu_check.sh --prepare
# then run it there with `carry: [".whl", ".fixture"]`:
#     bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Not installed there with python3's torch (KINDS.md's package list); pinned as in scripts/constraints.txt.
WHEELS=(open-clip-torch==3.3.0 faiss-cpu==1.15.1 sqlalchemy==2.1.9 alembic==1.20.1 Mako==1.3.10 platformdirs==4.14.9
        webvtt-py==0.6.0 tantivy==0.27.0 ftfy==6.3.1 wcwidth==0.2.14 greenlet==3.2.4)

if [[ "${1:-}" == "--prepare" ]]; then
  exclude="$(git rev-parse --git-path info/exclude)"
  mkdir -p "$(dirname "$exclude")"
  for ignored in /.whl/ /.fixture/; do grep -qxF "$ignored" "$exclude" 2>/dev/null || echo "$ignored" >>"$exclude"; done
  mkdir -p .whl .fixture
  for wheel in "${WHEELS[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform any -d .whl "$wheel"
  done
  rm -f .whl/mmsearch-*.whl  # mmsearch itself, as it is now (re-run --prepare after changing the code)
  python3 -m pip wheel -q --no-deps --no-build-isolation -w .whl .
  shared="${MMSEARCH_SHARED:-../shared}"
  if [[ -d "$shared/models/hf" ]]; then cp -r "$shared/models/hf" .fixture/; fi
  du -sh .whl .fixture
  exit 0
fi

if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/mmsearch-site \
    .whl/*.whl
  export PYTHONPATH="/tmp/mmsearch-site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [[ -d .fixture/hf ]]; then
  export HF_HOME="$PWD/.fixture/hf"
elif [[ -d ../shared/models/hf ]]; then
  export HF_HOME="$(cd ../shared/models/hf && pwd)"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
  echo "gpu_check: nvidia-smi not found: no NVIDIA GPU here" >&2
fi
python="${PYTHON:-python3}"
exec timeout 290 "$python" bench/gpu_check.py "$@"
