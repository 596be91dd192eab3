"""Layer 5, engine operations: running the ``pulumi`` CLI and ``kubectl`` around the program.

The targeted step (:mod:`~meshkit.engine.step`, scoped by :mod:`~meshkit.engine.refresh_scope`), what the
engine and the cluster hold (:mod:`~meshkit.engine.sources`), reviewed = applied
(:mod:`~meshkit.engine.reviewed`), and the repair of a killed update (:mod:`~meshkit.engine.unlock`, from
what :mod:`~meshkit.engine.interrupted` and :mod:`~meshkit.engine.stale_locks` find). The program is reached
only through the engine, never imported.
"""
