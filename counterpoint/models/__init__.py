"""The in-process models: the bi-encoder (``embedder``), the cross-encoder (``reranker``),
where their weights come from and how they are loaded (``paths``), and the set of models one
replica serves (``pool``). May import the counterpoint base (errors, settings, schemas) only.
"""
