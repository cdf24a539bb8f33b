# Shared shell helpers for tradeguard's scripts (sourced, not run).
# shellcheck shell=bash

PG_BIN=/usr/lib/postgresql/15/bin
PG_CONFIG="$PG_BIN/pg_config"
export PATH="$HOME/.cargo/bin:$PG_BIN:$PATH"

log() { printf '\033[1m[tradeguard]\033[0m %s\n' "$*"; }

# Run a command as the unprivileged `postgres` OS user (initdb refuses root).
as_pg() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

# A directory tree that `postgres` owns, outside /root.
pg_dir() {
  mkdir -p "$1"
  chown postgres:postgres "$1"
  chmod 700 "$1"
}

# 32 random bytes as hex, mode 0600, owned by postgres: a tradeguard root key file.
make_root_key() {
  local f=$1
  if [ ! -s "$f" ]; then
    (umask 077; openssl rand -hex 32 > "$f")
  fi
  chown postgres:postgres "$f"
  chmod 600 "$f"
}

# initdb a cluster if missing. $1 = data dir, $2.. = extra initdb args
init_cluster() {
  local data=$1; shift
  if [ ! -s "$data/PG_VERSION" ]; then
    pg_dir "$(dirname "$data")"
    pg_dir "$data"
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres --encoding=UTF8 --locale=C.UTF-8 "$@" >/dev/null
  fi
}

# Start (or restart, to load a new library build) a cluster. $1 = data dir, $2 = port
start_cluster() {
  local data=$1 port=$2
  if as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
  fi
  # RUST_BACKTRACE in the server's environment would put Rust backtraces into error DETAILs.
  as_pg env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$PG_BIN/pg_ctl" -D "$data" -o "-p $port -k /tmp" -l "$data/../server.log" -w -t 60 start >/dev/null || {
    echo "server failed to start; last log lines:" >&2
    tail -n 30 "$data/../server.log" >&2
    return 1
  }
}

stop_cluster() {
  local data=$1
  if [ -s "$data/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
  fi
}

# psql as the postgres superuser over the Unix socket. $1 = port, $2 = db, rest = psql args
psql_su() {
  local port=$1 db=$2; shift 2
  as_pg "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -h /tmp -p "$port" -d "$db" "$@"
}

# Install the extension into the system PostgreSQL. $1 = "release" or "debug"
install_extension() {
  local args=(--pg-config "$PG_CONFIG")
  [ "${1:-release}" = release ] && args+=(--release)
  cargo pgrx install "${args[@]}" >/dev/null
}

# A demo CA and a server certificate for localhost (ECDSA P-256) in $1, owned by postgres.
make_demo_tls() {
  local dir=$1
  pg_dir "$dir"
  [ -s "$dir/server.crt" ] && return 0
  (
    cd "$dir"
    umask 077
    openssl req -new -x509 -days 3650 -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -subj "/O=tradeguard demo/CN=tradeguard demo CA" -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -subj "/O=tradeguard demo/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 397 \
      -extfile server.ext -out server.crt 2>/dev/null
    rm -f server.csr server.ext
    chmod 600 server.key ca.key
    chmod 644 ca.crt server.crt
  ) || return 1
  chown -R postgres:postgres "$dir"
}
