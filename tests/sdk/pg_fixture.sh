#!/bin/sh
# Throwaway PostgreSQL cluster for the SDK tests (CTest fixture "pg").
#
#   pg_fixture.sh start STATE_DIR   initdb + pg_ctl start on 127.0.0.1:<free port>;
#                                   writes STATE_DIR/url (libpq URL of database
#                                   "postgres", user "herald", trust auth)
#   pg_fixture.sh stop STATE_DIR    stops the cluster and removes its data dir
#
# The data and socket dir live in a fresh temp dir (mktemp -d) owned by the
# user that runs the server. PostgreSQL refuses to run as root, so as root the
# server commands run as the unprivileged user `postgres` (runuser/setpriv).
# Environment: PG_BINDIR (default: newest /usr/lib/postgresql/*/bin, else
# pg_config --bindir), PG_FSYNC=on|off (default off: the tests kill clients,
# never the server; the benchmark sets on), PG_USER (default postgres).
set -eu

cmd=${1:?usage: pg_fixture.sh start|stop STATE_DIR}
state=${2:?usage: pg_fixture.sh start|stop STATE_DIR}
fsync=${PG_FSYNC:-off}
pg_user=${PG_USER:-postgres}

bindir=${PG_BINDIR:-}
if [ -z "$bindir" ]; then
  for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    if [ -x "$d/initdb" ]; then bindir=$d; break; fi
  done
fi
if [ -z "$bindir" ] && command -v pg_config >/dev/null 2>&1; then bindir=$(pg_config --bindir); fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "pg_fixture: no initdb found (install postgresql-15 or set PG_BINDIR)" >&2
  exit 1
fi

as_server_user() {
  if [ "$(id -u)" = 0 ]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u "$pg_user" -- "$@"
    else
      setpriv --reuid="$pg_user" --regid="$pg_user" --init-groups -- "$@"
    fi
  else
    "$@"
  fi
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case "$cmd" in
start)
  mkdir -p "$state"
  if [ -f "$state/tmpdir" ]; then "$0" stop "$state" || true; fi
  tmp=$(mktemp -d /tmp/herald-pg.XXXXXX)
  echo "$tmp" > "$state/tmpdir"
  chmod 755 "$tmp"
  if [ "$(id -u)" = 0 ]; then chown "$pg_user" "$tmp"; fi
  as_server_user "$bindir/initdb" -D "$tmp/data" -U herald --auth=trust -E UTF8 --no-sync \
    >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; exit 1; }
  tries=0
  while :; do
    port=$(free_port)
    if as_server_user "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $tmp -c fsync=$fsync \
            -c max_connections=300 -c track_commit_timestamp=on -c shared_buffers=64MB" \
        start >/dev/null; then
      break
    fi
    tries=$((tries + 1))
    if [ $tries -ge 5 ]; then cat "$tmp/server.log" >&2; exit 1; fi
  done
  echo "postgresql://herald@127.0.0.1:$port/postgres" > "$state/url.tmp"
  mv "$state/url.tmp" "$state/url"
  echo "pg_fixture: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($tmp)"
  ;;
stop)
  [ -f "$state/tmpdir" ] || exit 0
  tmp=$(cat "$state/tmpdir")
  if [ -d "$tmp/data" ]; then
    as_server_user "$bindir/pg_ctl" -D "$tmp/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      as_server_user "$bindir/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
  rm -f "$state/tmpdir" "$state/url"
  echo "pg_fixture: stopped"
  ;;
*)
  echo "usage: pg_fixture.sh start|stop STATE_DIR" >&2
  exit 2
  ;;
esac
