# Sourced by the API suites: starts (once, idempotently) a private PostgreSQL 15 cluster from
# Debian's postgresql-15 on a loopback port, with its data dir under /tmp, and defines
# `pg_new_database NAME` which prints a fresh database URL, and `pg_stop`.
PG_BIN=/usr/lib/postgresql/15/bin
# Under /tmp: the postgres user must be able to reach it (a clone under /root is not).
PG_DATA="${SEALPOD_PG_DATA:-/tmp/sealpod-pg-api}"
PG_PORT="${SEALPOD_PG_PORT:-55439}"

pg_as() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_start() {
  if pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then return 0; fi
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    mkdir -p "$PG_DATA"
    [ "$(id -u)" = 0 ] && chown postgres: "$PG_DATA"
    pg_as "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres >/dev/null
  fi
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DATA -c fsync=on" start >/dev/null
}

pg_new_database() {
  local name="$1"
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "DROP DATABASE IF EXISTS $name" >/dev/null
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE $name" >/dev/null
  echo "postgres://postgres@127.0.0.1:$PG_PORT/$name"
}

# Stops the cluster (suites call it on exit: tests stop every process they start).
pg_stop() {
  if pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
  fi
}
