"""The per-item work of each verb, below the CLI: picklable settings + ``__call__(item) -> report fields``.

A task loads its model lazily, once per process (``load()``), so the same object runs in this process (the local
executor) or is shipped to workers that each load the model once (other executors). Planned output paths travel on
the item (``item.info["outputs"]``).
"""


def planned_outputs(item) -> list:
    """The outputs planned for ``item`` (``item.info["outputs"]``): the runner's ``planned=`` for every task; a module
    function, so that it pickles with the task for executors that run items in other processes."""
    return list(item.info["outputs"])
