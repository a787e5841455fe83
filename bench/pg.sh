# Sourced by the bench scripts: a throwaway PostgreSQL cluster from Debian's packages in "$1" (a directory the caller
# removes), on a free loopback port, trust authentication; run as the postgres user when we are root. Sets PG_BIN,
# PG_URL (database "provisor", created) and PG_DATA; `pg_stop` stops it. Durable settings are PostgreSQL's defaults
# (fsync on), so the numbers are what a real database gives.
pg_start() {
  local dir="$1"
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  [ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)"; exit 1; }
  PG_DATA="$dir/pgdata"
  mkdir -p "$PG_DATA"
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    chmod 755 "$dir"
    chown postgres:postgres "$PG_DATA"
    as=(runuser -u postgres --)
  fi
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${as[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 >/dev/null
  "${as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $PG_DATA -c max_connections=300 -c shared_buffers=512MB" start >/dev/null
  "$PG_BIN/psql" -q -d "postgres://postgres@127.0.0.1:$port/postgres" -c "CREATE DATABASE provisor"
  PG_URL="postgres://postgres@127.0.0.1:$port/provisor"
  PG_AS=("${as[@]}")
}

pg_stop() {
  [ -n "${PG_DATA:-}" ] && "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
}
