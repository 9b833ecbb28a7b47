"""Faust tables: per-lead state (`tables.define_tables`)."""

from leadstream.tables.tables import Tables, define_tables

__all__ = ["Tables", "define_tables"]
