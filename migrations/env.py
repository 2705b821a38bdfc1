"""Alembic environment: runs migrations on the connection mmsearch hands over, or on a URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from mmsearch.store.models import Base

config = context.config
target_metadata = Base.metadata

# Keyword-search structures are derived data that migrations maintain outside the models (0003).
_DERIVED_TABLES = ("search_fts",)
_DERIVED_COLUMNS = {"search_vector"}
_DERIVED_INDEXES = {"ix_text_items_search_vector", "ix_media_files_name_search"}


def include_name(name, type_, parent_names) -> bool:
    """Leave the keyword-search tables, columns and indexes out of autogenerate and ``alembic check``."""
    if type_ == "table":
        return not (name or "").startswith(_DERIVED_TABLES)
    if type_ == "column":
        return name not in _DERIVED_COLUMNS
    if type_ == "index":
        return name not in _DERIVED_INDEXES
    return True


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
