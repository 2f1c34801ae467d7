"""Read-model builders: they follow the global log by position and write rows.

A projection never talks to a database directly: the runner hands it a
:class:`~projections.base.Session` inside the transaction that also records the
projection's new position, so every event is applied exactly once.
"""
