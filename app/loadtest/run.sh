#!/usr/bin/env bash
# Load test of the whole server with wrk, next to baselines measured in the
# same run: a bare Fiber plain-text server, and this machine's bcrypt rate.
#
#   bash app/loadtest/run.sh            # 10 s per run, BCRYPT_COST=12, SQLite
#   LOAD_DURATION=30s BCRYPT_COST=10 bash app/loadtest/run.sh
#   LOAD_DATABASE_URL=postgres://user:pw@127.0.0.1:5432/db bash app/loadtest/run.sh
#
# With LOAD_DATABASE_URL the same binary is also measured on PostgreSQL, in
# a schema of its own that is dropped at the end (psql must be installed).
# Needs wrk (apt-get install -y wrk) and curl. Every server it starts listens
# on loopback and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

DUR=${LOAD_DURATION:-10s}
COST=${BCRYPT_COST:-12}
CONNS=${LOAD_CONNECTIONS:-32}
APP_ADDR=${LOAD_APP_ADDR:-127.0.0.1:8098}
BASE_ADDR=${LOAD_BASELINE_ADDR:-127.0.0.1:8099}
COLD_SESSIONS=${LOAD_COLD_SESSIONS:-20000}
COLD_RATE=${LOAD_COLD_RATE:-2000}
HERE=app/loadtest

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
schema=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$schema" ]; then psql -q "$LOAD_DATABASE_URL" -c "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "building…"
go build -o "$tmp/fiberauth" .
go build -o "$tmp/baseline" ./$HERE/baseline
go build -o "$tmp/sessions" ./$HERE/sessions

"$tmp/baseline" -addr "$BASE_ADDR" & pids+=($!)

export LOAD_USER=loaduser LOAD_PASSWORD='correct horse battery'

# start_app ADDR COST VAR=VALUE…: starts the app with a fresh database named
# by the settings, waits until it is ready, and sets app_pid.
start_app() {
  local addr=$1 cost=$2; shift 2
  env "$@" ADDR="$addr" BCRYPT_COST="$cost" LOG_LEVEL=error \
    LOGIN_FAILURES_PER_IP=100000000 REGISTRATIONS_PER_IP=100000000 "$tmp/fiberauth" & app_pid=$!
  pids+=($app_pid)
  for _ in $(seq 300); do curl -fs "http://$addr/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "the app did not start on $addr" >&2; exit 1
}

# sign_in ADDR: registers the load user and sets LOAD_TOKEN.
sign_in() {
  curl -fs -X POST "http://$1/register/user" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$LOAD_USER\",\"email\":\"$LOAD_USER@example.com\",\"password\":\"$LOAD_PASSWORD\"}" >/dev/null
  LOAD_TOKEN=$(curl -fs -X POST "http://$1/token" --data-urlencode "username=$LOAD_USER" \
    --data-urlencode "password=$LOAD_PASSWORD" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  export LOAD_TOKEN
}

stop_app() { kill "$app_pid" 2>/dev/null || true; wait "$app_pid" 2>/dev/null || true; }

# wrk_run NAME ARGS…: runs wrk and prints "NAME rps p99 errors".
wrk_run() {
  local name=$1; shift
  local out
  out=$(wrk --latency "$@")
  echo "$out" > "$tmp/$name.txt"
  local rps p99 non2xx sock
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx or 3xx responses:/ {print $5}')
  sock=$(echo "$out" | awk '/Socket errors:/ {gsub(",", ""); print $4+$6+$8+$10}')
  echo "$name ${rps:-0} ${p99:-?} $(( ${non2xx:-0} + ${sock:-0} ))"
}

# ms VALUE: wrk's latency (850.00us, 1.20ms, 2.00s) in milliseconds.
ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'; }

# refresh_run NAME: POST /token grant_type=refresh_token on the running app,
# REFRESH_CHAINS connections each following its own chain of tokens.
REFRESH_CHAINS=${LOAD_REFRESH_CHAINS:-8}
refresh_run() {
  "$tmp/sessions" -base "http://$APP_ADDR" -user "$LOAD_USER" -password "$LOAD_PASSWORD" -n "$REFRESH_CHAINS" \
    -refresh -out "$tmp/refresh.txt" >/dev/null
  LOAD_REFRESH="$tmp/refresh.txt" wrk_run "$1" -t"$REFRESH_CHAINS" -c"$REFRESH_CHAINS" -d"$DUR" -s $HERE/refresh.lua "http://$APP_ADDR/token"
}

# cold_run NAME VAR=VALUE…: GET /users/me over more sessions than the
# server caches, on a server of bcrypt cost 4 (the sessions are made fast).
cold_run() {
  local name=$1; shift
  start_app "$APP_ADDR" 4 "$@"
  sign_in "$APP_ADDR"
  "$tmp/sessions" -base "http://$APP_ADDR" -user "$LOAD_USER" -password "$LOAD_PASSWORD" -n "$COLD_SESSIONS" -out "$tmp/tokens.txt"
  LOAD_TOKENS="$tmp/tokens.txt" wrk_run "$name" -t2 -c"$CONNS" -d"$DUR" -s $HERE/cold.lua "http://$APP_ADDR/users/me"
  "$tmp/sessions" -base "http://$APP_ADDR" -out "$tmp/tokens.txt" -measure "$COLD_RATE" -conns "$CONNS" \
    -duration "$DUR" > "$tmp/$name.paced"
  stop_app
}

echo "measuring (each run $DUR, $CONNS connections)…"
results=()
results+=("$(wrk_run baseline-plaintext -t2 -c"$CONNS" -d"$DUR" "http://$BASE_ADDR/")")

start_app "$APP_ADDR" "$COST" DATABASE_PATH="$tmp/app.db"
sign_in "$APP_ADDR"
results+=("$(wrk_run sqlite-users-me -t2 -c"$CONNS" -d"$DUR" -s $HERE/bearer.lua "http://$APP_ADDR/users/me")")
results+=("$(wrk_run sqlite-login-page -t2 -c"$CONNS" -d"$DUR" "http://$APP_ADDR/login")")
results+=("$(wrk_run sqlite-profile-cookie -t2 -c"$CONNS" -d"$DUR" -s $HERE/cookie.lua "http://$APP_ADDR/profile")")
# Four connections keep both bcrypt workers busy and stay under the five
# sign-ins one account may have in flight at once.
results+=("$(wrk_run sqlite-token -t2 -c4 -d"$DUR" --timeout 10s -s $HERE/token.lua "http://$APP_ADDR/token")")
# Flood POST /token with wrong passwords for many accounts while a signed-in
# user reads /users/me.
wrk -t1 -c64 -d"$DUR" --timeout 10s -s $HERE/flood.lua "http://$APP_ADDR/token" > "$tmp/flood.txt" &
flood_pid=$!
sleep 1
results+=("$(wrk_run sqlite-users-me-in-flood -t1 -c"$CONNS" -d"$DUR" -s $HERE/bearer.lua "http://$APP_ADDR/users/me")")
wait $flood_pid || true
flood_rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/flood.txt")
rss_kb=$(awk '/^VmRSS:/ {print $2}' /proc/$app_pid/status)
results+=("$(refresh_run sqlite-refresh)")
stop_app
results+=("$(cold_run sqlite-users-me-cold DATABASE_PATH="$tmp/cold.db")")
durable_sqlite=$("$tmp/baseline" -durable "$tmp/durable.db" -duration 5s)

if [ -n "${LOAD_DATABASE_URL:-}" ]; then
  schema="load_$$"
  psql -q "$LOAD_DATABASE_URL" -c "CREATE SCHEMA $schema" >/dev/null
  case "$LOAD_DATABASE_URL" in *\?*) pg_url="$LOAD_DATABASE_URL&search_path=$schema" ;; *) pg_url="$LOAD_DATABASE_URL?search_path=$schema" ;; esac
  start_app "$APP_ADDR" "$COST" DATABASE_URL="$pg_url"
  sign_in "$APP_ADDR"
  results+=("$(wrk_run postgres-users-me -t2 -c"$CONNS" -d"$DUR" -s $HERE/bearer.lua "http://$APP_ADDR/users/me")")
  results+=("$(wrk_run postgres-token -t2 -c4 -d"$DUR" --timeout 10s -s $HERE/token.lua "http://$APP_ADDR/token")")
  results+=("$(refresh_run postgres-refresh)")
  stop_app
  durable_pg=$("$tmp/baseline" -durable "$pg_url" -conns "$REFRESH_CHAINS" -duration 5s)
  psql -q "$LOAD_DATABASE_URL" -c "DROP SCHEMA $schema CASCADE; CREATE SCHEMA $schema" >/dev/null
  results+=("$(cold_run postgres-users-me-cold DATABASE_URL="$pg_url")")
fi

bcrypt_rate=$("$tmp/baseline" -bcrypt-cost "$COST" -duration 5s)

# A flood of new 900-byte login names from one address against a server
# with the default limits: the throttle must not grow with it.
DATABASE_PATH="$tmp/flood.db" ADDR="$APP_ADDR" BCRYPT_COST="$COST" LOG_LEVEL=error "$tmp/fiberauth" & app_pid=$!
pids+=($app_pid)
for _ in $(seq 100); do curl -fs "http://$APP_ADDR/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
rss_before=$(awk '/^VmRSS:/ {print $2}' /proc/$app_pid/status)
unique_rps=$(wrk -t2 -c64 -d"$DUR" --timeout 10s -s $HERE/unique.lua "http://$APP_ADDR/token" | awk '/^Requests\/sec:/ {print $2}')
rss_after=$(awk '/^VmRSS:/ {print $2}' /proc/$app_pid/status)
stop_app

base_rps=$(echo "${results[0]}" | awk '{print $2}')
printf '\n%-26s %12s %10s %8s %10s\n' "run" "req/s" "p99 (ms)" "errors" "vs bare"
for r in "${results[@]}"; do
  set -- $r
  printf '%-26s %12.1f %10s %8s %9.1f%%\n' "$1" "$2" "$(ms "$3")" "$4" "$(awk -v a="$2" -v b="$base_rps" 'BEGIN { printf "%.1f", 100 * a / b }')"
done
rate_of() { printf '%s\n' "${results[@]}" | awk -v n="$1" '$1 == n {print $2}'; }
echo
echo "bcrypt cost $COST on $(nproc) CPUs: $bcrypt_rate verifications/s; POST /token reached $(awk -v a="$(rate_of sqlite-token)" -v b="$bcrypt_rate" 'BEGIN { printf "%.1f", 100 * a / b }')% of it on SQLite"
if [ -n "${LOAD_DATABASE_URL:-}" ]; then
  echo "PostgreSQL: POST /token reached $(awk -v a="$(rate_of postgres-token)" -v b="$bcrypt_rate" 'BEGIN { printf "%.1f", 100 * a / b }')% of the bcrypt rate; GET /users/me at $(awk -v a="$(rate_of postgres-users-me)" -v b="$(rate_of sqlite-users-me)" 'BEGIN { printf "%.2f", a / b }') x its SQLite figure"
fi
echo "refresh grant on SQLite: $(rate_of sqlite-refresh) req/s; bare one-row durable transactions: $durable_sqlite/s ($(awk -v a="$(rate_of sqlite-refresh)" -v b="$durable_sqlite" 'BEGIN { printf "%.2f", a / b }') x)"
if [ -n "${LOAD_DATABASE_URL:-}" ]; then
  echo "refresh grant on PostgreSQL: $(rate_of postgres-refresh) req/s; bare one-row durable transactions ($REFRESH_CHAINS writers): $durable_pg/s ($(awk -v a="$(rate_of postgres-refresh)" -v b="$durable_pg" 'BEGIN { printf "%.2f", a / b }') x)"
fi
echo "cold runs cycle through $COLD_SESSIONS sessions, more than the caches hold; at a steady $COLD_RATE req/s over $CONNS connections:"
for f in "$tmp"/*.paced; do echo "  $(basename "$f" .paced): $(cat "$f")"; done
echo "flood of POST /token (64 connections, wrong passwords): $flood_rps req/s answered (401 or 503)"
echo "server resident size after the SQLite runs: $(( rss_kb / 1024 )) MiB ($rss_kb KiB)"
echo "new 900-byte login names from one address, default limits: $unique_rps req/s; resident size $(( rss_before / 1024 )) -> $(( rss_after / 1024 )) MiB"
if [ "${LOAD_KEEP:-}" = 1 ]; then trap - EXIT; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; echo "kept $tmp"; fi
