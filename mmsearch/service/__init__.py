"""A warm query service: ``mmsearch serve`` keeps an engine loaded, and ``mmsearch query`` uses it when it runs.

:mod:`.protocol` (requests, results, the discovery file) and :mod:`.client` import neither torch nor SQLAlchemy,
so a query that the service answers starts no model and opens no database.
"""
