"""The per-item work of each verb, below the CLI: picklable settings + ``__call__(item) -> report fields``.

A task loads its model lazily, once per process (``load()``), so the same object runs in this process (the local
executor) or is shipped to workers that each load the model once (other executors). Planned output paths travel on
the item (``item.info["outputs"]``).
"""


from ..batch.runner import planned_outputs  # noqa: E402,F401  (the one definition; tasks use it)
