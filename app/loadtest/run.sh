#!/usr/bin/env bash
# Load test of the whole server with wrk, next to baselines measured in the
# same run on the same machine:
#   - a bare Fiber server answering "Hello, World!" (for GET /users/me and
#     the pages), measured in alternating rounds with the app (the ratio is
#     the median of the rounds' ratios, as the machine's speed drifts);
#   - this machine's bcrypt rate on all cores (for the password grant);
#   - a bare refresh server doing only a refresh grant's unavoidable work:
#     one durable conditional update of one row, one Ed25519 signature, the
#     JSON answer (for the refresh grant), on each engine;
# then the introspection and code exchange rates, the server's resident
# size after LOAD_SESSIONS sessions were each signed in and used once, and
# a few runs under attack. It prints a Markdown table; with LOAD_README=1 it
# also writes it into README.md's "Performance" section.
#
#   bash app/loadtest/run.sh                     # 5 s rounds, 3 rounds, BCRYPT_COST=12
#   LOAD_DATABASE_URL=postgres://user:pw@127.0.0.1:5432/db bash app/loadtest/run.sh
#   LOAD_README=1 LOAD_DATABASE_URL=… bash app/loadtest/run.sh
#
# With LOAD_DATABASE_URL the same binary is also measured on PostgreSQL, in
# a schema of its own that is dropped at the end (psql must be installed).
# Needs wrk (apt-get install -y wrk) and curl. Every server it starts listens
# on loopback and is stopped at the end. The app runs with its default
# settings (request lines logged, at info) except for the sign-in limits,
# which a load from one address would reach.
set -euo pipefail
cd "$(dirname "$0")/../.."

DUR=${LOAD_DURATION:-5s}
# The password grant does a few sign-ins per second: it runs longer, so
# that the requests cut off at the end of a run do not weigh in its rate.
SLOW_DUR=${LOAD_SLOW_DURATION:-20s}
ROUNDS=${LOAD_ROUNDS:-3}
COST=${BCRYPT_COST:-12}
CONNS=${LOAD_CONNECTIONS:-32}
SESSIONS=${LOAD_SESSIONS:-100000}
CODES=${LOAD_CODES:-10000}
COLD_RATE=${LOAD_COLD_RATE:-2000}
REFRESH_CHAINS=${LOAD_REFRESH_CHAINS:-8}
APP_ADDR=${LOAD_APP_ADDR:-127.0.0.1:8098}
BASE_ADDR=${LOAD_BASELINE_ADDR:-127.0.0.1:8099}
REFRESH_ADDR=${LOAD_REFRESH_ADDR:-127.0.0.1:8097}
INTROSPECTION=load-introspection-secret-0123456789
REDIRECT=http://127.0.0.1:9/callback
HERE=app/loadtest

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
schema=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$schema" ]; then psql -q "$LOAD_DATABASE_URL" -c "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true; fi
  if [ -n "${LOAD_KEEP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

echo "building…" >&2
go build -o "$tmp/fiberauth" .
go build -o "$tmp/baseline" ./$HERE/baseline
go build -o "$tmp/sessions" ./$HERE/sessions

"$tmp/baseline" -addr "$BASE_ADDR" & pids+=($!)

export LOAD_USER=loaduser LOAD_PASSWORD='correct horse battery' LOAD_INTROSPECTION=$INTROSPECTION
LIMITS=(LOGIN_FAILURES_PER_IP=1000000 LOGIN_FAILURES_PER_ACCOUNT=1000000 LOGIN_FAILURES_ACCOUNT_WIDE=1000000
  REGISTRATIONS_PER_IP=1000000)

# start_app ADDR COST VAR=VALUE…: starts the app with the database the
# settings name, waits until it is ready, and sets app_pid.
start_app() {
  local addr=$1 cost=$2; shift 2
  env "$@" ADDR="$addr" PUBLIC_URL="http://$addr" BCRYPT_COST="$cost" INTROSPECTION_TOKENS="$INTROSPECTION" "$tmp/fiberauth" 2>>"$tmp/app.log" &
  app_pid=$!
  pids+=($app_pid)
  for _ in $(seq 300); do curl -fs "http://$addr/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "the app did not start on $addr" >&2; exit 1
}
stop_app() { kill "$app_pid" 2>/dev/null || true; wait "$app_pid" 2>/dev/null || true; }

# sign_in ADDR: registers the load user and sets LOAD_TOKEN.
sign_in() {
  curl -fs -X POST "http://$1/register/user" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$LOAD_USER\",\"email\":\"$LOAD_USER@example.com\",\"password\":\"$LOAD_PASSWORD\"}" >/dev/null
  LOAD_TOKEN=$(curl -fs -X POST "http://$1/token" --data-urlencode "username=$LOAD_USER" \
    --data-urlencode "password=$LOAD_PASSWORD" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  export LOAD_TOKEN
}

# new_client VAR=VALUE…: registers a first-party client on the database the
# settings name and sets CLIENT_ID and CLIENT_SECRET.
new_client() {
  local out
  out=$(env "$@" "$tmp/fiberauth" clients create --name "Load test" --redirect-uri "$REDIRECT" --first-party)
  CLIENT_ID=$(echo "$out" | awk '/^client_id:/ {print $2}')
  CLIENT_SECRET=$(echo "$out" | awk '/^client_secret:/ {print $2}')
}

# wrk_run ARGS…: runs wrk and prints "rps p99_ms errors".
wrk_run() {
  local out
  out=$(wrk --latency "$@")
  local rps p99 non2xx sock
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx or 3xx responses:/ {print $5}')
  sock=$(echo "$out" | awk '/Socket errors:/ {gsub(",", ""); print $4+$6+$8+$10}')
  echo "${rps:-0} $(ms "${p99:-0us}") $(( ${non2xx:-0} + ${sock:-0} ))"
}

# ms VALUE: wrk's latency (850.00us, 1.20ms, 2.00s) in milliseconds.
ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.4f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "–" }'; }
fmt() { awk -v v="$1" 'BEGIN { printf "%\047.0f", v }'; }

# rows of the table: "work|engine|rps|p99|baseline|baseline rps|ratio|target"
rows=()
row() { rows+=("$1|$2|$3|$4|$5|$6|$7|$8"); echo "  $1 ($2): $3 req/s, p99 $4 ms, ratio $7" >&2; }
errors=0
count_errors() { if [ "$1" != 0 ]; then echo "  ($1 errors in that run)" >&2; errors=$(( errors + $1 )); fi; }

# rounds NAME URL LUA ENGINE TARGET: alternates the bare server and the app for ROUNDS
# rounds and adds a row with the medians.
rounds() {
  local name=$1 url=$2 lua=$3 engine=$4 target=$5 r b a
  local ratios=() rps=() p99s=() bases=()
  for r in $(seq "$ROUNDS"); do
    set -- $(wrk_run -t2 -c"$CONNS" -d"$DUR" "http://$BASE_ADDR/")
    b=$1
    set -- $(wrk_run -t2 -c"$CONNS" -d"$DUR" ${lua:+-s $HERE/$lua} "$url")
    a=$1; count_errors "$3"
    rps+=("$a"); p99s+=("$2"); bases+=("$b"); ratios+=("$(ratio "$a" "$b")")
  done
  row "$name" "$engine" "$(printf '%s\n' "${rps[@]}" | median)" "$(printf '%s\n' "${p99s[@]}" | median)" \
    "bare Fiber, plain text" "$(printf '%s\n' "${bases[@]}" | median)" "$(printf '%s\n' "${ratios[@]}" | median)" "$target"
}

# refresh_run ENGINE TARGET: the refresh grant on the running app, then the
# bare refresh server on TARGET, each with REFRESH_CHAINS connections
# following their own chains.
refresh_run() {
  local engine=$1 target=$2 app base
  "$tmp/sessions" -base "http://$APP_ADDR" -n "$REFRESH_CHAINS" -refresh -out "$tmp/refresh.txt" >/dev/null
  app=$(LOAD_REFRESH="$tmp/refresh.txt" wrk_run -t"$REFRESH_CHAINS" -c"$REFRESH_CHAINS" -d"$DUR" -s $HERE/refresh.lua "http://$APP_ADDR/token")
  "$tmp/baseline" -addr "$REFRESH_ADDR" -refresh "$target" -chains "$REFRESH_CHAINS" -out "$tmp/chains.txt" &
  local bpid=$!
  pids+=($bpid)
  for _ in $(seq 100); do [ -s "$tmp/chains.txt" ] && curl -s -o /dev/null "http://$REFRESH_ADDR/" && break; sleep 0.1; done
  base=$(LOAD_REFRESH="$tmp/chains.txt" wrk_run -t"$REFRESH_CHAINS" -c"$REFRESH_CHAINS" -d"$DUR" -s $HERE/refresh.lua "http://$REFRESH_ADDR/token")
  kill "$bpid"; wait "$bpid" 2>/dev/null || true
  rm -f "$tmp/chains.txt"
  set -- $app; local a=$1 p=$2; count_errors "$3"
  set -- $base; count_errors "$3"
  row "refresh grant (\`POST /token\`)" "$engine" "$a" "$p" "bare refresh: one conditional update, one Ed25519 signature" "$1" "$(ratio "$a" "$1")" "≥ 0.70"
}

introspect_run() {
  set -- $(wrk_run -t2 -c"$CONNS" -d"$DUR" -s $HERE/introspect.lua "http://$APP_ADDR/introspect")
  count_errors "$3"
  row "\`POST /introspect\` (revocation checked)" "$engine" "$1" "$2" "Hydra's published figure (in-memory store, 2 CPUs)" 7934 "$(ratio "$1" 7934)" "> 7,934/s"
}

codes_run() {
  set -- $("$tmp/sessions" -base "http://$APP_ADDR" -codes "$CODES" -conns 16 -client-id "$CLIENT_ID" \
    -client-secret "$CLIENT_SECRET" -redirect-uri "$REDIRECT")
  count_errors "$3"
  row "code exchange (\`POST /token\`, PKCE, ID token)" "$engine" "$1" "$2" "–" "–" "–" "report"
}

echo "bcrypt rate at cost $COST…" >&2
bcrypt_rate=$("$tmp/baseline" -bcrypt-cost "$COST" -duration "$SLOW_DUR")

echo "SQLite, $ROUNDS rounds of $DUR, $CONNS connections…" >&2
engine=SQLite
new_client DATABASE_PATH="$tmp/app.db"
start_app "$APP_ADDR" "$COST" DATABASE_PATH="$tmp/app.db" "${LIMITS[@]}"
sign_in "$APP_ADDR"
rounds "\`GET /users/me\`, bearer token" "http://$APP_ADDR/users/me" bearer.lua "$engine" "≥ 0.80"
rounds "\`GET /users/me\`, session cookie" "http://$APP_ADDR/users/me" cookie.lua "$engine" "≥ 0.80"
rounds "\`GET /profile\` page, session cookie" "http://$APP_ADDR/profile" cookie.lua "$engine" "report"
set -- $(wrk_run -t2 -c4 -d"$SLOW_DUR" --timeout 10s -s $HERE/token.lua "http://$APP_ADDR/token"); count_errors "$3"
row "password grant (\`POST /token\`, bcrypt cost $COST)" "$engine" "$1" "$2" "bcrypt verifications on all cores" "$bcrypt_rate" "$(ratio "$1" "$bcrypt_rate")" "≥ 0.95"
refresh_run "$engine" "$tmp/bare-refresh.db"
introspect_run
codes_run
# Flood POST /token with wrong passwords for many accounts while a signed-in
# user reads /users/me.
wrk -t1 -c64 -d"$DUR" --timeout 10s -s $HERE/flood.lua "http://$APP_ADDR/token" > "$tmp/flood.txt" &
flood_pid=$!
sleep 1
set -- $(wrk_run -t1 -c"$CONNS" -d"$DUR" -s $HERE/bearer.lua "http://$APP_ADDR/users/me"); count_errors "$3"
in_flood="$1 req/s (p99 $2 ms)"
wait $flood_pid || true
flood_rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/flood.txt")
stop_app

# Many sessions, each signed in once and used once: the resident size, and
# cold reads (every lookup a cache miss) at a steady rate.
echo "$SESSIONS sessions…" >&2
start_app "$APP_ADDR" 4 DATABASE_PATH="$tmp/many.db" "${LIMITS[@]}"
sign_in "$APP_ADDR"
"$tmp/sessions" -base "http://$APP_ADDR" -n "$SESSIONS" -accounts 8 -out "$tmp/tokens.txt"
LOAD_TOKENS="$tmp/tokens.txt" wrk -t2 -c"$CONNS" -d"$(( SESSIONS / 5000 + 5 ))s" -s $HERE/cold.lua "http://$APP_ADDR/users/me" >/dev/null
rss_kb=$(awk '/^VmRSS:/ {print $2}' /proc/$app_pid/status)
paced=$("$tmp/sessions" -base "http://$APP_ADDR" -out "$tmp/tokens.txt" -measure "$COLD_RATE" -conns "$CONNS" -duration "$DUR")
stop_app

if [ -n "${LOAD_DATABASE_URL:-}" ]; then
  echo "PostgreSQL…" >&2
  engine=PostgreSQL
  schema="load_$$"
  psql -q "$LOAD_DATABASE_URL" -c "CREATE SCHEMA $schema" >/dev/null
  case "$LOAD_DATABASE_URL" in *\?*) pg_url="$LOAD_DATABASE_URL&search_path=$schema" ;; *) pg_url="$LOAD_DATABASE_URL?search_path=$schema" ;; esac
  new_client DATABASE_URL="$pg_url"
  start_app "$APP_ADDR" "$COST" DATABASE_URL="$pg_url" "${LIMITS[@]}"
  sign_in "$APP_ADDR"
  rounds "\`GET /users/me\`, bearer token" "http://$APP_ADDR/users/me" bearer.lua "$engine" "≥ 0.80"
  set -- $(wrk_run -t2 -c4 -d"$SLOW_DUR" --timeout 10s -s $HERE/token.lua "http://$APP_ADDR/token"); count_errors "$3"
  row "password grant (\`POST /token\`, bcrypt cost $COST)" "$engine" "$1" "$2" "bcrypt verifications on all cores" "$bcrypt_rate" "$(ratio "$1" "$bcrypt_rate")" "≥ 0.95"
  refresh_run "$engine" "$pg_url"
  introspect_run
  codes_run
  stop_app
fi

# A flood of new 900-byte login names from one address against a server
# with the default limits: the throttle must not grow with it.
start_app "$APP_ADDR" "$COST" DATABASE_PATH="$tmp/flood.db"
rss_before=$(awk '/^VmRSS:/ {print $2}' /proc/$app_pid/status)
unique_rps=$(wrk -t2 -c64 -d"$DUR" --timeout 10s -s $HERE/unique.lua "http://$APP_ADDR/token" | awk '/^Requests\/sec:/ {print $2}')
rss_after=$(awk '/^VmRSS:/ {print $2}' /proc/$app_pid/status)
stop_app

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs ($cpu), $(go version | awk '{print $3}'), wrk -t2 -c$CONNS,"
  echo "$ROUNDS rounds of $DUR where a ratio is the median of rounds against the bare server; bcrypt cost $COST (the password grant and the bcrypt rate over $SLOW_DUR, 4 connections);"
  echo "the app with its defaults (JSON request log at info) but the sign-in limits raised."
  echo
  echo "| Work | Engine | Requests/s | p99 (ms) | Baseline | Baseline/s | Ratio | Target |"
  echo "| --- | --- | ---: | ---: | --- | ---: | ---: | --- |"
  for r in "${rows[@]}"; do
    IFS='|' read -r w e a p b br ra t <<< "$r"
    [ "$br" != "–" ] && br=$(fmt "$br")
    echo "| $w | $e | $(fmt "$a") | $p | $b | $br | $ra | $t |"
  done
  echo
  echo "- Resident size after $(fmt "$SESSIONS") sessions were each signed in and used once (SQLite): **$(( rss_kb / 1024 )) MiB** (target: under 128 MiB)."
  echo "- Cold reads of those sessions (every lookup misses the caches) at a steady $COLD_RATE/s over $CONNS connections: $paced."
  echo "- \`GET /users/me\` while 64 connections flood \`POST /token\` with wrong passwords for many accounts: $in_flood; the flood got $flood_rps answers/s (\`401\` or \`503\`)."
  echo "- New 900-byte login names from one address, default limits: $unique_rps req/s; resident size $(( rss_before / 1024 )) → $(( rss_after / 1024 )) MiB."
  echo "- Failed or refused requests in the measured runs: $errors."
} > "$tmp/table.md"

cat "$tmp/table.md"
if [ "${LOAD_README:-}" = 1 ]; then
  awk -v table="$tmp/table.md" '
    /<!-- loadtest:begin -->/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
    /<!-- loadtest:end -->/ { skip = 0 }
    !skip { print }' README.md > "$tmp/README.md"
  grep -q '<!-- loadtest:begin -->' "$tmp/README.md" || { echo "README.md has no loadtest markers" >&2; exit 1; }
  cp "$tmp/README.md" README.md
  echo "README.md updated" >&2
fi
