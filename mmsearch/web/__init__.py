"""The web app and HTTP API of ``mmsearch serve``: FastAPI under uvicorn (the ``server`` extra).

:mod:`.app` builds the application around one warm :class:`~mmsearch.engine.Engine`; :mod:`.routes` holds the
versioned API (``/api/v1``), :mod:`.security` the guard every request passes first (host, token or sign-in
cookie, cross-site checks, body limits), :mod:`.thumbnails` and :mod:`.media` serve assets by id only,
:mod:`.jobs` runs ingests in the background, :mod:`.server` runs it all under uvicorn, and ``static/`` is the
page (plain HTML, CSS and JavaScript, no build step).
"""

from __future__ import annotations

from mmsearch.errors import MissingDependencyError


def require_server_extra() -> None:
    """Raise MissingDependencyError unless FastAPI, uvicorn and python-multipart are installed."""
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(name) is None]
    if missing:
        from mmsearch.hints import install_hint

        raise MissingDependencyError(f"mmsearch serve needs {', '.join(missing)}: {install_hint('server')}")
