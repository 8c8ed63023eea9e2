#!/usr/bin/env bash
# A benchmark, not a test: ACME issuance throughput with 1, 2 and 3 certhub
# nodes on one PostgreSQL, behind certhub-rrproxy (round robin per request),
# driven by certhub-bench (complete RFC 8555 flows, http-01). Each node count
# gets a fresh database. Results: one SUMMARY line per run, see docs/MULTINODE.md.
#
#   scripts/bench-multinode.sh                        # debug binaries from ${CARGO_TARGET_DIR:-target}/debug
#   BIN=target/release ORDERS=400 CONC=16 scripts/bench-multinode.sh
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and built binaries:
# certhub, certhub-bench, certhub-testdns, certhub-rrproxy.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-${CARGO_TARGET_DIR:-target}/debug}"
BIN="$(cd "$BIN" && pwd)"
ORDERS=${ORDERS:-150}
CONC=${CONC:-16}
NODES=${NODES:-"1 2 3"}
PSQL=(psql -h 127.0.0.1 -U postgres -X -q -v ON_ERROR_STOP=1)
W="$(mktemp -d /tmp/certhub-mnbench.XXXXXX)"
PIDS=()
DBS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for d in "${DBS[@]}"; do "${PSQL[@]}" -d test -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1; done
  echo "logs in $W" >&2
}
trap cleanup EXIT
trap "exit 130" INT TERM

ports() { python3 -c 'import socket,sys
s=[socket.socket() for _ in range(int(sys.argv[1]))]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"; }
wait_up() { for _ in $(seq 1 150); do curl -fsS -o /dev/null "$1/healthz" 2>/dev/null && return 0; sleep 0.2; done; return 1; }

export CERTHUB_KEK
CERTHUB_KEK="$(head -c 32 /dev/urandom | base64)"
export CERTHUB_LOG=warn
read -r DNS MGMT H01 <<<"$(ports 3)"
"$BIN/certhub-testdns" --dns "127.0.0.1:$DNS" --mgmt "127.0.0.1:$MGMT" --default-a 127.0.0.1 >"$W/dns.log" 2>&1 &
PIDS+=("$!")

for n in $NODES; do
  db="certhub_mnbench_${n}_$$"
  DBS+=("$db")
  "${PSQL[@]}" -d test -c "CREATE DATABASE $db" >/dev/null
  url="postgres://postgres@127.0.0.1/$db"
  read -r FRONT P1 P2 P3 Q1 Q2 Q3 <<<"$(ports 7)"
  TLS=("$P1" "$P2" "$P3")
  HTTP=("$Q1" "$Q2" "$Q3")
  backends=()
  node_pids=()
  for i in $(seq 0 $((n - 1))); do
    d="$W/n$n-node$i"
    mkdir -p "$d"
    cat >"$d/certhub.toml" <<EOF
[validation]
resolver = "127.0.0.1:$DNS"
http01_port = $H01
allow_loopback = true
EOF
    if grep -qa 'acme_new_order' "$BIN/certhub"; then
      printf '\n[rate_limits]\nper_api_key = { max = 0, window_secs = 1 }\nper_ip = { max = 0, window_secs = 1 }\nacme_new_order = { max = 0, window_secs = 1 }\n' >>"$d/certhub.toml"
    fi
    "$BIN/certhub" --data-dir "$d" --database-url "$url" serve --listen "127.0.0.1:${TLS[$i]}" \
      --http-listen "127.0.0.1:${HTTP[$i]}" --public-url "http://127.0.0.1:$FRONT" \
      --pki-url "http://127.0.0.1:$FRONT" >"$d/serve.log" 2>&1 &
    PIDS+=("$!")
    node_pids+=("$!")
    backends+=(--backend "127.0.0.1:${HTTP[$i]}")
  done
  "$BIN/certhub-rrproxy" --listen "127.0.0.1:$FRONT" "${backends[@]}" >"$W/proxy-$n.log" 2>&1 &
  proxy=$!
  PIDS+=("$proxy")
  for i in $(seq 0 $((n - 1))); do wait_up "http://127.0.0.1:${HTTP[$i]}" || { echo "node $i did not start" >&2; exit 1; }; done
  wait_up "http://127.0.0.1:$FRONT" || exit 1
  ch=("$BIN/certhub" --data-dir "$W/n$n-node0" --database-url "$url")
  "${ch[@]}" admin customer create bench >/dev/null
  key=$("${ch[@]}" admin apikey create bench)
  "${ch[@]}" admin credit add bench 100000000 >/dev/null
  names=$(seq 0 249 | sed 's/.*/"b&.bench.example.com"/' | paste -sd,)
  curl -sS -H "Authorization: ApiKey $key" -H 'Content-Type: application/json' \
    -d "{\"customer\":\"bench\",\"product\":\"sectigo_dv_acme\",\"domainNames\":[${names}],\"period\":12,\"autoRenew\":true}" \
    "http://127.0.0.1:$FRONT/v2/ssl/acme" >"$W/sub-$n.json"
  dir=$(sed -n 's/.*"directoryUrl":"\([^"]*\)".*/\1/p' "$W/sub-$n.json")
  kid=$(sed -n 's/.*"accountKey":"\([^"]*\)".*/\1/p' "$W/sub-$n.json")
  hmac=$(sed -n 's/.*"hmacKey":"\([^"]*\)".*/\1/p' "$W/sub-$n.json")
  [ -n "$dir" ] || { echo "subscription failed: $(head -c 400 "$W/sub-$n.json")" >&2; exit 1; }
  echo "== $n node(s): $ORDERS orders at $CONC clients" >&2
  "$BIN/certhub-bench" acme --directory "$dir" --eab-kid "$kid" --eab-hmac "$hmac" --concurrency "$CONC" \
    --orders "$ORDERS" --http01-listen "127.0.0.1:$H01" --domain bench.example.com --name-pool 250 \
    --server-pid "${node_pids[0]}" --label "pg-${n}node" | grep '^SUMMARY'
  for p in "${node_pids[@]}" "$proxy"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
done
