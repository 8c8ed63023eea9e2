#!/usr/bin/env bash
# Side-by-side ACME issuance benchmark: Pebble, certhub on SQLite, certhub on
# PostgreSQL, the same load generator (certhub-bench) against each, then a
# table with certhub / Pebble ratios. See BENCHMARKS.md.
#
#   bench/compare.sh                      # 400 orders at 8 clients (CONCS="8 32": see BENCHMARKS.md)
#   ORDERS=1000 CONCS="8 64" bench/compare.sh
#   CONCS="8 32" PEBBLE_CONCS=8 bench/compare.sh   # Pebble stalls at 32 clients here
#   SKIP_PG=1 SKIP_BUILD=1 bench/compare.sh
#   SKIP_PEBBLE=1 SKIP_PG=1 bench/compare.sh   # certhub on SQLite only (ratios print "-")
#   SKIP_PEBBLE=1 SKIP_SQLITE=1 bench/compare.sh   # certhub on PostgreSQL only
#   REST=1 SEED=1000000 bench/compare.sh  # also the REST figures (1M subscriptions)
#   ANSWER_WAIT=0 ...                     # certhub answers challenge POSTs at once ("processing")
#   PERF=1 ...                            # also perf record each server under load ($WORK/LABEL-C.perf.data)
#
# Needs: pebble (Debian package; installed with apt-get if missing), openssl,
# curl, and for PostgreSQL a server on 127.0.0.1:5432 (user postgres).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$CARGO_TARGET_DIR/release}
ORDERS=${ORDERS:-400}
CONCS=${CONCS:-"8"}
NAMES=${NAMES:-1}
DNS_PORT=${DNS_PORT:-18053}
HTTP01_PORT=${HTTP01_PORT:-15002}
PEBBLE_PORT=${PEBBLE_PORT:-14000}
CERTHUB_PORT=${CERTHUB_PORT:-18443}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1/postgres}
PG_DB=${PG_DB:-certhub_bench}
REST=${REST:-0}
SEED=${SEED:-0}
WORK=$(mktemp -d /tmp/certhub-bench.XXXXXX)
RESULTS=$WORK/results.txt
PIDS=()

log() { echo "== $*" >&2; }
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    log "logs and results kept in $WORK"
}
trap cleanup EXIT

wait_for() { # URL [curl args...]
    local url=$1; shift
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "timed out waiting for $url" >&2; return 1
}

# ---------------------------------------------------------------- tools
if ! command -v pebble >/dev/null; then
    log "installing pebble"
    sudo -n apt-get install -y pebble || apt-get install -y pebble
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building certhub and certhub-bench (release)"
    (cd "$ROOT" && cargo build --release -p certhub --bin certhub -p certhub-bench --bin certhub-bench)
fi

# ---------------------------------------------------------------- DNS
# Every name answers 127.0.0.1 (A only: the responder listens on IPv4).
pebble-challtestsrv -dns01 "127.0.0.1:$DNS_PORT" -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
    -http01 "" -https01 "" -tlsalpn01 "" -management "127.0.0.1:$((DNS_PORT + 2))" \
    >"$WORK/dns.log" 2>&1 &
PIDS+=($!)

HMAC=$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')
BENCH_OPTS=(--http01-listen "127.0.0.1:$HTTP01_PORT" --names-per-order "$NAMES" --domain bench.example.com --name-pool 250 --orders "$ORDERS")

run_load() { # LABEL PID DIRECTORY KID HMAC CA [CONCURRENCIES]
    local label=$1 pid=$2 dir=$3 kid=$4 hmac=$5 ca=$6 concs=${7:-$CONCS}
    for c in $concs; do
        log "$label: $ORDERS orders at $c clients"
        local perf_pid=
        if [ "${PERF:-0}" = 1 ]; then # sample the server during the load
            perf record -F 999 -g -o "$WORK/$label-$c.perf.data" -p "$pid" 2>/dev/null &
            perf_pid=$!
            sleep 0.5
        fi
        "$BIN/certhub-bench" acme --directory "$dir" --eab-kid "$kid" --eab-hmac "$hmac" \
            --ca-cert "$ca" --concurrency "$c" --server-pid "$pid" --label "$label" \
            "${BENCH_OPTS[@]}" | tee "$WORK/$label-$c.txt" >&2
        grep '^SUMMARY' "$WORK/$label-$c.txt" >>"$RESULTS"
        if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
    done
}

# ---------------------------------------------------------------- Pebble
if [ "${SKIP_PEBBLE:-0}" != 1 ]; then
log "starting pebble"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=bench root" -keyout "$WORK/pebble-root.key" -out "$WORK/pebble-root.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$WORK/pebble.key" -out "$WORK/pebble.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$WORK/san.ext"
openssl x509 -req -in "$WORK/pebble.csr" -CA "$WORK/pebble-root.pem" -CAkey "$WORK/pebble-root.key" \
    -CAcreateserial -days 30 -extfile "$WORK/san.ext" -out "$WORK/pebble.pem" 2>/dev/null
cat >"$WORK/pebble.json" <<EOF
{"pebble": {
  "listenAddress": "127.0.0.1:$PEBBLE_PORT",
  "managementListenAddress": "127.0.0.1:$((PEBBLE_PORT + 1))",
  "certificate": "$WORK/pebble.pem",
  "privateKey": "$WORK/pebble.key",
  "httpPort": $HTTP01_PORT,
  "tlsPort": $((HTTP01_PORT + 1)),
  "ocspResponderURL": "",
  "externalAccountBindingRequired": true,
  "externalAccountMACKeys": {"bench-kid": "$HMAC"}
}}
EOF
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    pebble -config "$WORK/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT" >"$WORK/pebble.log" 2>&1 &
PEBBLE_PID=$!
PIDS+=("$PEBBLE_PID")
wait_for "https://localhost:$PEBBLE_PORT/dir" --cacert "$WORK/pebble-root.pem"
run_load pebble "$PEBBLE_PID" "https://localhost:$PEBBLE_PORT/dir" bench-kid "$HMAC" "$WORK/pebble-root.pem" \
    "${PEBBLE_CONCS:-$CONCS}"
kill "$PEBBLE_PID"; wait "$PEBBLE_PID" 2>/dev/null || true
fi

# ---------------------------------------------------------------- certhub
# Starts certhub on DB_URL, creates a customer, API key and a subscription
# listing the 250 bench names, runs the load, optionally the REST mix.
run_certhub() { # LABEL DB_URL
    local label=$1 db=$2 data=$WORK/$1
    mkdir -p "$data"
    cat >"$data/certhub.toml" <<EOF
[validation]
resolver = "127.0.0.1:$DNS_PORT"
http01_port = $HTTP01_PORT
allow_loopback = true
${ANSWER_WAIT:+answer_wait = $ANSWER_WAIT}
EOF
    # The load comes from one IP and a few accounts: lift the abuse ceilings
    # (Pebble has none) when this build has them.
    if grep -qa 'acme_new_order' "$BIN/certhub"; then
        cat >>"$data/certhub.toml" <<EOF

[rate_limits]
per_api_key = { max = 0, window_secs = 1 }
per_ip = { max = 0, window_secs = 1 }
acme_new_order = { max = 0, window_secs = 1 }
EOF
    fi
    local ch=("$BIN/certhub" --data-dir "$data" --database-url "$db")
    "${ch[@]}" migrate >/dev/null
    "${ch[@]}" ca init >/dev/null
    "${ch[@]}" serve --listen "127.0.0.1:$CERTHUB_PORT" --public-url "https://localhost:$CERTHUB_PORT" \
        >"$data/serve.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    "${ch[@]}" ca bundle >"$data/root.pem"
    wait_for "https://localhost:$CERTHUB_PORT/acme/sectigo_dv_acme/directory" --cacert "$data/root.pem"
    "${ch[@]}" admin customer create bench >/dev/null
    local key
    key=$("${ch[@]}" admin apikey create bench)
    "${ch[@]}" admin credit add bench 100000000 >/dev/null
    local names
    names=$(seq 0 249 | sed 's/.*/"b&.bench.example.com"/' | paste -sd,)
    curl -sS --fail-with-body --cacert "$data/root.pem" -H "Authorization: ApiKey $key" -H 'Content-Type: application/json' \
        -d "{\"customer\":\"bench\",\"product\":\"sectigo_dv_acme\",\"domainNames\":[${names}],\"period\":12,\"autoRenew\":true}" \
        "https://localhost:$CERTHUB_PORT/v2/ssl/acme?quote=false" >"$data/sub.json" \
        || { head -c 600 "$data/sub.json" >&2; exit 1; }
    local dir kid hmac
    dir=$(sed -n 's/.*"directoryUrl":"\([^"]*\)".*/\1/p' "$data/sub.json")
    kid=$(sed -n 's/.*"accountKey":"\([^"]*\)".*/\1/p' "$data/sub.json")
    hmac=$(sed -n 's/.*"hmacKey":"\([^"]*\)".*/\1/p' "$data/sub.json")
    run_load "$label" "$pid" "$dir" "$kid" "$hmac" "$data/root.pem"
    if [ "$REST" = 1 ]; then
        if [ "$SEED" -gt 0 ]; then
            log "$label: seeding $SEED subscriptions"
            "$BIN/certhub-bench" seed --database-url "$db" --customer bench --count "$SEED" >&2
        fi
        for mix in 1:0:0 0:1:0 0:0:1; do
            log "$label: REST mix $mix"
            "$BIN/certhub-bench" rest --base "https://localhost:$CERTHUB_PORT" --key "$key" \
                --ca-cert "$data/root.pem" --concurrency 8 --requests 4000 --mix "$mix" \
                --server-pid "$pid" --label "$label-rest-$mix" | tee "$WORK/$label-rest-$mix.txt" >&2
            grep '^SUMMARY' "$WORK/$label-rest-$mix.txt" >>"$WORK/rest.txt"
        done
    fi
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

if [ "${SKIP_SQLITE:-0}" != 1 ]; then
    log "certhub on SQLite"
    run_certhub certhub-sqlite "sqlite://$WORK/certhub-sqlite.db"
fi

if [ "${SKIP_PG:-0}" != 1 ]; then
    if psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB" >/dev/null 2>&1; then
        log "certhub on PostgreSQL"
        run_certhub certhub-pg "${PG_ADMIN%/*}/$PG_DB"
    else
        log "PostgreSQL not reachable at $PG_ADMIN: skipped"
    fi
fi

# ---------------------------------------------------------------- table
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
echo
printf '%-15s %5s %7s %6s %9s %8s %8s %11s %11s %8s %9s %9s\n' server clients issued errors "certs/s" "p50 ms" "p99 ms" "cpu ms/cert" "bench ms/c" "HWM MiB" "x tput" "x cpu"
while read -r line; do
    label=$(field label "$line"); c=$(field concurrency "$line")
    tput=$(field certs_per_s "$line"); cpu=$(field server_cpu_ms_per_cert "$line")
    ref=$(grep " label=pebble concurrency=$c " "$RESULTS" || true)
    rt=$(field certs_per_s "$ref"); rc=$(field server_cpu_ms_per_cert "$ref")
    xt=$(awk -v a="$tput" -v b="$rt" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "-" }')
    xc=$(awk -v a="$cpu" -v b="$rc" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "-" }')
    printf '%-15s %5s %7s %6s %9s %8s %8s %11s %11s %8s %9s %9s\n' "$label" "$c" "$(field issued "$line")" \
        "$(field errors "$line")" "$tput" "$(field p50_ms "$line")" "$(field p99_ms "$line")" "$cpu" \
        "$(field client_cpu_ms_per_cert "$line")" "$(field server_hwm_mib "$line")" "$xt" "$xc"
done <"$RESULTS"
if [ -f "$WORK/rest.txt" ]; then
    echo; cat "$WORK/rest.txt"
fi
