"""Talking to a running ``mmsearch serve`` (the web app of :mod:`mmsearch.web`): ``mmsearch query`` uses it when
it runs.

:mod:`.protocol` (the discovery file, search parameters, results) and :mod:`.client` import neither torch nor numpy
nor SQLAlchemy, so a query that the service answers starts no model and opens no database.
"""
