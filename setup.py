"""Package discovery (the rest of the metadata is in pyproject.toml).

Every package under ``mmsearch/`` is found, never listed by hand; the Alembic migrations live in ``migrations/`` at
the top of the checkout (where ``alembic`` expects them) and are installed as ``mmsearch.migrations``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["mmsearch", "mmsearch.*"]), "mmsearch.migrations"],
    package_dir={"mmsearch.migrations": "migrations"},
)
