#!/usr/bin/env bash
# Source me. Creates (once) and activates a virtual environment for this checkout.
#
# Two layers, so that checkouts side by side never run each other's code and a dependency change costs one
# download, not one per checkout:
#   1. a dependency venv shared by every checkout, cached outside them under
#      ~/.cache/mmsearch/venvs/<hash of the dependency spec> (pyproject's dependency lists + constraints + the
#      extras + Python version). It holds the dependencies only, never mmsearch itself;
#   2. this checkout's own venv in <checkout>/.venv (git-ignored): mmsearch installed in editable mode from this
#      checkout, and a .pth line that puts the dependency venv's site-packages after its own.
# MMSEARCH_VENV_NO_BUILD=1: fail instead of building a missing dependency venv (tests of this script).
# Shell options of the caller are left as they were (everything runs inside a function with `local -`).
# The function is called as an `if` condition, where bash ignores `set -e`: every step that can fail is checked
# by hand (`|| return 1`), never left to errexit.

_mmsearch_venv() {
    local -
    set -euo pipefail
    local root python cache_root extras spec_key deps site own_site
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    python="${PYTHON:-python3}"
    cache_root="${MMSEARCH_VENV_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/mmsearch/venvs}"
    extras="${MMSEARCH_VENV_EXTRAS:-clip,onnx,postgres,audio,heif,dev}"

    # The requirement lines of the dependencies and the chosen extras, and the spec hash they make.
    local reqs
    if ! reqs="$("$python" - "$root" "$extras" <<'PY'
import hashlib, json, pathlib, sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
root, extras = pathlib.Path(sys.argv[1]), sys.argv[2].split(",")
project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
optional = project.get("optional-dependencies", {})
lines = list(project.get("dependencies", []))
for extra in extras:
    lines += optional.get(extra, [])
spec = {
    "requirements": lines,
    "constraints": (root / "scripts" / "constraints.txt").read_text(),
    "python": sys.version.split()[0],
    "layout": 2,
}
print(hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16])
print("\n".join(lines))
PY
)"; then
        echo "mmsearch: cannot read the dependency lists of $root/pyproject.toml with $python" >&2
        return 1
    fi
    spec_key="$(head -n 1 <<<"$reqs")"
    if ! [[ "$spec_key" =~ ^[0-9a-f]{16}$ ]]; then  # never `rm -rf` a path made from an empty key
        echo "mmsearch: no dependency spec key for $root (got '$spec_key')" >&2
        return 1
    fi
    deps="$cache_root/$spec_key"
    mkdir -p "$cache_root" || return 1

    exec 9>"$deps.lock"
    if command -v flock >/dev/null; then
        flock 9  # one installer at a time; others wait, then find the venv ready
    fi
    if [ ! -x "$deps/bin/python" ] || [ ! -f "$deps/.complete" ]; then
        if [ -n "${MMSEARCH_VENV_NO_BUILD:-}" ]; then  # tests: fail rather than download gigabytes
            echo "mmsearch: no dependency environment $deps, and MMSEARCH_VENV_NO_BUILD is set" >&2
            exec 9>&-
            return 1
        fi
        echo "mmsearch: creating the dependency environment $deps (first run; downloads torch, a few minutes)" >&2
        rm -rf "$deps"
        tail -n +2 <<<"$reqs" >"$deps.requirements.txt"
        local log="$deps.install.log"
        if ! { "$python" -m venv "$deps" \
               && "$deps/bin/python" -m pip install --upgrade pip 'setuptools>=77' wheel build \
               && "$deps/bin/python" -m pip install -c "$root/scripts/constraints.txt" \
                      -r "$deps.requirements.txt"; } >"$log" 2>&1; then
            echo "mmsearch: installing the dependency environment failed; last lines of $log:" >&2
            tail -n 30 "$log" >&2
            exec 9>&-
            return 1
        fi
        touch "$deps/.complete"
    fi
    exec 9>&-

    # This checkout's own venv, layered on the shared one.
    local own="$root/.venv"
    if [ ! -x "$own/bin/python" ]; then
        "$python" -m venv --without-pip "$own" || return 1
    fi
    own_site="$("$own/bin/python" -I -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || return 1
    site="$("$deps/bin/python" -I -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || return 1
    if [ "$(cat "$own_site/_mmsearch_deps.pth" 2>/dev/null)" != "$site" ]; then
        { echo "$site" >"$own_site/_mmsearch_deps.pth.tmp" \
          && mv "$own_site/_mmsearch_deps.pth.tmp" "$own_site/_mmsearch_deps.pth"; } || return 1
    fi
    # -I: the caller's folder (maybe another checkout) and PYTHONPATH must not decide which mmsearch is found.
    local installed_at
    installed_at="$("$own/bin/python" -I -c 'import mmsearch, pathlib; print(pathlib.Path(mmsearch.__file__).resolve().parent.parent)' 2>/dev/null || true)"
    if [ "$installed_at" != "$root" ] || ! "$own/bin/python" -I -c 'import mmsearch.migrations' 2>/dev/null; then
        local out
        if ! out="$("$own/bin/python" -m pip install --no-deps --no-build-isolation -e "$root" 2>&1)"; then
            echo "mmsearch: installing this checkout into $own failed:" >&2
            echo "$out" | grep -v '^WARNING: Location' >&2
            return 1
        fi
    fi
    # Python tools run by this checkout's interpreter (the dependency venv's own scripts would not see mmsearch).
    local tool
    for tool in pytest mypy alembic; do
        if [ ! -x "$own/bin/$tool" ]; then
            printf '#!/bin/sh\nexec "%s" -m %s "$@"\n' "$own/bin/python" "$tool" >"$own/bin/$tool" || return 1
            chmod +x "$own/bin/$tool" || return 1
        fi
    done
    # pip, ruff... come from the dependency venv's bin, after this checkout's.
    _MMSEARCH_VENV_PATH="$own/bin:$deps/bin"
    _MMSEARCH_VENV_ROOT="$root"
    _MMSEARCH_VENV_OWN="$own"
}

if _mmsearch_venv; then
    export VIRTUAL_ENV="$_MMSEARCH_VENV_OWN"
    export PATH="$_MMSEARCH_VENV_PATH:$PATH"
    export MMSEARCH_ROOT="$_MMSEARCH_VENV_ROOT"
    unset _MMSEARCH_VENV_PATH _MMSEARCH_VENV_ROOT _MMSEARCH_VENV_OWN
    hash -r 2>/dev/null || true
else
    echo "mmsearch: the virtual environment is not ready (see above)" >&2
    # shellcheck disable=SC2317  # `return` when sourced, `exit` when run
    return 1 2>/dev/null || exit 1
fi
