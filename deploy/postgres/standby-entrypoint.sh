#!/bin/sh
# A streaming standby: on first start, copy the primary with pg_basebackup (-R writes the
# standby's recovery settings), then run as a read-only hot standby that follows it.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA" && chown postgres "$PGDATA" && chmod 700 "$PGDATA"
  until gosu postgres env PGPASSWORD="$PG_REPLICATION_PASSWORD" pg_basebackup \
      -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -R -X stream -P; do
    echo "waiting for the primary..."; sleep 2
  done
fi
exec gosu postgres postgres -c hot_standby=on
