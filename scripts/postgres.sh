#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: started in a temporary folder on a
# loopback port, stopped by its process id, its folder deleted.
#
#   source scripts/postgres.sh
#   pg_start          # sets TIRAGE_TEST_POSTGRES_URL and PG_TMP on success; returns 1 if
#                     # no server can be started here (the reason is in PG_WHY)
#   ...
#   pg_stop
#
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` user
# (created by Debian's postgresql package). PGPORT chooses the port (default: the first
# free one from 55432). PG_INITDB_OPTS and PG_SERVER_OPTS add options to initdb and to
# the server (e.g. PG_INITDB_OPTS=--wal-segsize=256 PG_SERVER_OPTS="-c max_wal_size=4GB").

pg_bin_dir() {
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return
    fi
    local dir last=""
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x $dir/initdb ]] && last=$dir
    done
    [[ -n $last ]] && echo "$last"
}

pg_start() {
    local bin port as=()
    bin=$(pg_bin_dir) || true
    if [[ -z $bin ]]; then
        PG_WHY="no PostgreSQL server binaries (initdb, pg_ctl) on this machine"
        return 1
    fi
    # the port asked for, or the first free one from 55432
    port=${PGPORT:-}
    if [[ -z $port ]]; then
        for port in $(seq 55432 55462); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
        done
    fi
    PG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tirage-pg.XXXXXX")
    if [[ $(id -u) == 0 ]]; then
        if ! id postgres >/dev/null 2>&1; then
            PG_WHY="running as root and there is no 'postgres' user to run the server as"
            rm -rf "$PG_TMP"
            return 1
        fi
        chown postgres: "$PG_TMP"
        as=(runuser -u postgres --)
    fi
    if ! (cd / && "${as[@]}" "$bin/initdb" -D "$PG_TMP/data" -U postgres -A trust -E UTF8 \
        --no-sync ${PG_INITDB_OPTS:-} >"$PG_TMP/initdb.log" 2>&1); then
        PG_WHY="initdb failed: $(tail -3 "$PG_TMP/initdb.log")"
        rm -rf "$PG_TMP"
        return 1
    fi
    # durability as in production (fsync, synchronous_commit on); enough connections
    # for the test suite, whose tests each open a small pool
    if ! (cd / && "${as[@]}" "$bin/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_TMP -c max_connections=300 ${PG_SERVER_OPTS:-}" \
        start >/dev/null 2>&1); then
        PG_WHY="the server did not start: $(tail -3 "$PG_TMP/server.log" 2>/dev/null)"
        rm -rf "$PG_TMP"
        return 1
    fi
    PG_PID=$(head -1 "$PG_TMP/data/postmaster.pid")
    export TIRAGE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    local version
    version=$("$bin/postgres" --version)
    echo "$version: started as pid $PG_PID on port $port"
}

pg_stop() {
    [[ -n ${PG_PID:-} ]] || return 0
    kill -INT "$PG_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 300); do
        kill -0 "$PG_PID" 2>/dev/null || break
        sleep 0.1
    done
    rm -rf "$PG_TMP"
    unset PG_PID TIRAGE_TEST_POSTGRES_URL
}
