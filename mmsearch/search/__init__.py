"""The query side: a query built once, options, hybrid retrieval, fusion, query language, filters, hits."""
