"""Postgres: schema migrations, connection helpers and the workspace registry."""
