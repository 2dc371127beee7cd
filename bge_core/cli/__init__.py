"""The ``bge`` command line: ``bge index``, ``bge search``, ``bge eval`` and ``bge models``.

Entry point: :func:`bge_core.cli.main.main`. Store adapters are found through the
``bge.stores`` entry-point group, so ``bge_core`` never imports an adapter.
"""
