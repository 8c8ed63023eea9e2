#!/usr/bin/env bash
# A/B of two certhub builds on this noisy shared machine: one data directory
# (SQLite, SEED seeded subscriptions), the two binaries restarted on it in
# turn for ROUNDS rounds, each round measuring server CPU per request of the
# REST list page and single GET (8 clients) and of ACME issuance (8 clients,
# ORDERS orders). Compare medians and the per-round sign, not single runs.
#
#   bench/ab.sh /tmp/certhub-old /tmp/certhub-new
#   ROUNDS=5 SEED=1000000 ORDERS=400 bench/ab.sh A B
#
# Needs: certhub-bench (release) and pebble-challtestsrv (apt-get install pebble).
set -euo pipefail
A=$1 B=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-${CARGO_TARGET_DIR:-$ROOT/target}/release/certhub-bench}
ROUNDS=${ROUNDS:-5} SEED=${SEED:-1000000} ORDERS=${ORDERS:-400}
PORT=${PORT:-18443} DNS_PORT=${DNS_PORT:-18053} HTTP01_PORT=${HTTP01_PORT:-15002}
W=$(mktemp -d /tmp/certhub-ab.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; echo "== kept in $W" >&2; }
trap cleanup EXIT

pebble-challtestsrv -dns01 "127.0.0.1:$DNS_PORT" -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
  -http01 "" -https01 "" -tlsalpn01 "" -management "127.0.0.1:$((DNS_PORT + 2))" >"$W/dns.log" 2>&1 &
PIDS+=($!)
mkdir -p "$W/data"
cat >"$W/data/certhub.toml" <<TOML
[validation]
resolver = "127.0.0.1:$DNS_PORT"
http01_port = $HTTP01_PORT
allow_loopback = true

[rate_limits]
per_api_key = { max = 0, window_secs = 1 }
per_ip = { max = 0, window_secs = 1 }
acme_new_order = { max = 0, window_secs = 1 }
TOML
SERVER=""
start() { # BIN
  [ -n "$SERVER" ] && { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; }
  "$1" --data-dir "$W/data" serve --listen "127.0.0.1:$PORT" --public-url "https://localhost:$PORT" \
    >>"$W/serve.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  for _ in $(seq 1 100); do curl -sfk -o /dev/null "https://127.0.0.1:$PORT/healthz" && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}
ch() { "$A" --data-dir "$W/data" "$@"; }
start "$A"
ch ca bundle >"$W/root.pem"
ch admin customer create bench >/dev/null
KEY=$(ch admin apikey create bench)
ch admin credit add bench 100000000 >/dev/null
names=$(seq 0 249 | sed 's/.*/"b&.bench.example.com"/' | paste -sd,)
curl -sS --cacert "$W/root.pem" -H "Authorization: ApiKey $KEY" -H 'Content-Type: application/json' \
  -d "{\"customer\":\"bench\",\"product\":\"sectigo_dv_acme\",\"domainNames\":[$names],\"period\":12}" \
  "https://localhost:$PORT/v2/ssl/acme?quote=false" >"$W/sub.json"
field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$W/sub.json"; }
"$BENCH" seed --database-url "sqlite://$W/data/certhub.db" --customer bench --count "$SEED" >&2

cpu() { grep -o "server_cpu_ms_per_[a-z]*=[0-9.]*" | cut -d= -f2; }
rest() { "$BENCH" rest --base "https://localhost:$PORT" --key "$KEY" --ca-cert "$W/root.pem" \
  --concurrency 8 --requests "$2" --mix "$1" --server-pid "$SERVER" 2>&1 | cpu; }
acme() { "$BENCH" acme --directory "$(field directoryUrl)" --eab-kid "$(field accountKey)" \
  --eab-hmac "$(field hmacKey)" --ca-cert "$W/root.pem" --concurrency 8 --server-pid "$SERVER" \
  --http01-listen "127.0.0.1:$HTTP01_PORT" --domain bench.example.com --name-pool 250 \
  --orders "$ORDERS" 2>&1 | cpu; }

printf '%-6s %-5s %16s %14s %15s\n' round build "list ms CPU/req" "get ms CPU/req" "acme ms CPU/cert"
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    bin=$A; [ "$side" = B ] && bin=$B
    start "$bin"
    rest 0:1:0 500 >/dev/null   # warm-up
    printf '%-6s %-5s %16s %14s %15s\n' "$r" "$side" "$(rest 0:1:0 3000)" "$(rest 1:0:0 3000)" "$(acme)"
  done
done
