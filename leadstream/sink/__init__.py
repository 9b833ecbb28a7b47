"""The Postgres read replica: batched, version-guarded writes from the derived topics."""
