"""Package discovery (the rest of the metadata is in pyproject.toml).

Every package under ``mmsearch/`` is found, never listed by hand; the Alembic migrations live in ``migrations/`` at
the top of the checkout (where ``alembic`` expects them) and are installed as ``mmsearch.migrations``.
"""

from setuptools import find_packages, setup

setup(
    # mmsearch.web.static and the migrations' versions/ are folders without __init__.py (data and Alembic
    # scripts), named here so that setuptools ships them as packages instead of warning that they would be ignored
    packages=[
        *find_packages(include=["mmsearch", "mmsearch.*"]),
        "mmsearch.web.static",
        "mmsearch.migrations",
        "mmsearch.migrations.versions",
    ],
    package_dir={"mmsearch.migrations": "migrations", "mmsearch.migrations.versions": "migrations/versions"},
)
