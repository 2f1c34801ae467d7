"""The append-only event store: one append port, PostgreSQL and SQLite backends."""
