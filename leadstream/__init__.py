"""leadstream: a WhatsApp sales line turned into a live lead database.

Layers (imports flow downwards only):
    cli, embedded             -- process wiring
    http, agents, sink         -- I/O: webhook/API, Faust processing, Postgres replica
    tables                     -- Faust tables (per-lead state)
    streams, broker, ingest    -- topics and record schemas, broker clients, payload parsing
    domain                     -- pure rules, no I/O
"""

__version__ = "0.1.0"
