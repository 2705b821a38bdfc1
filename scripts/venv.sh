#!/usr/bin/env bash
# Source me. Creates (once) and activates a cached virtual environment for this checkout.
#
# The venv lives outside the checkout, keyed on the dependency spec (pyproject's dependency
# lists + constraints + the extras installed + Python version), so repeat runs reuse it and a dependency change
# builds a fresh one. This checkout is (re)installed into it in editable mode, without
# dependencies, whenever the venv points elsewhere.
set -euo pipefail

MMSEARCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
CACHE_ROOT="${MMSEARCH_VENV_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/mmsearch/venvs}"
EXTRAS="clip,onnx,postgres,audio,dev"

spec_key="$("$PYTHON" - "$MMSEARCH_ROOT" "$EXTRAS" <<'PY'
import hashlib, json, sys, pathlib
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
root = pathlib.Path(sys.argv[1])
project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
spec = {
    "deps": project.get("dependencies", []),
    "extras": project.get("optional-dependencies", {}),
    "constraints": (root / "scripts" / "constraints.txt").read_text(),
    "installed_extras": sys.argv[2],
    "python": sys.version.split()[0],
}
print(hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16])
PY
)"
VENV="$CACHE_ROOT/$spec_key"

mkdir -p "$CACHE_ROOT"
exec 9>"$VENV.lock"
if command -v flock >/dev/null; then
    flock 9  # one installer at a time; others wait, then find the venv ready
fi

if [ ! -x "$VENV/bin/python" ] || [ ! -f "$VENV/.complete" ]; then
    echo "mmsearch: creating virtual environment $VENV (first run; downloads torch, a few minutes)" >&2
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    log="$VENV.install.log"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip setuptools wheel \
           && "$VENV/bin/python" -m pip install -c "$MMSEARCH_ROOT/scripts/constraints.txt" \
                  -e "$MMSEARCH_ROOT[$EXTRAS]"; } >"$log" 2>&1; then
        echo "mmsearch: installing the virtual environment failed; last lines of $log:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    touch "$VENV/.complete"
fi

# The venv is shared by checkouts with the same dependency spec: point its editable install at this one.
installed_at="$("$VENV/bin/python" -c 'import mmsearch, pathlib; print(pathlib.Path(mmsearch.__file__).resolve().parent.parent)' 2>/dev/null || true)"
if [ "$installed_at" != "$MMSEARCH_ROOT" ]; then
    if ! out="$("$VENV/bin/python" -m pip install --no-deps --no-build-isolation -e "$MMSEARCH_ROOT" 2>&1)"; then
        echo "mmsearch: installing this checkout into $VENV failed:" >&2
        echo "$out" | grep -v '^WARNING: Location' >&2
        exit 1
    fi
fi
exec 9>&-

# shellcheck disable=SC1091
source "$VENV/bin/activate"
export MMSEARCH_ROOT
