"""Alembic migrations for the mmsearch metadata database (shipped as ``mmsearch.migrations``)."""
