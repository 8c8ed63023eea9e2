#!/usr/bin/env bash
# Three certhub nodes on one PostgreSQL (issue 8), end to end:
#   - a fresh database; three `certhub serve` processes started at the same
#     instant (concurrent migrations, CA creation, catalogue seeding), each
#     with a plain-HTTP listener, the same KEK, public URL and PKI URL;
#   - certhub-rrproxy in front: every HTTP *request* goes to the next node,
#     so one ACME client's nonces, orders, challenges and finalize calls are
#     served by different nodes;
#   - REST subscriptions for three customers, then lego issues certificates
#     (http-01 from a webroot) four at a time through the proxy while node 2
#     is killed with SIGKILL and restarted;
#   - concurrent operator revocations from three processes (CRL numbers);
#   - lifecycle: two `certhub lifecycle run --at T1` racing, then all nodes
#     restarted with their clocks at T2 and their own engines doing the work,
#     node 2 SIGKILLed while it holds job leases (CERTHUB_LEASE_SECONDS=5)
#     and restarted;
#   - checks with psql: orders, authorisations, serials, CRLs, transitions
#     exactly once, no double charge, ledger == balance + reservation.
# Loopback only. Prints `N passed, M failed`; exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/.."

PGHOST=127.0.0.1
PSQL=(psql -h "$PGHOST" -U postgres -X -q -v ON_ERROR_STOP=1)
if ! "${PSQL[@]}" -d test -Atc 'SELECT 1' >/dev/null 2>&1; then
  echo "SKIPPED: PostgreSQL unavailable at $PGHOST:5432 (user postgres, database test)"
  exit 0
fi
BIN="${CARGO_TARGET_DIR:-target}/debug"
for b in certhub certhub-testdns certhub-rrproxy; do
  [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: run cargo build --workspace --all-targets first"; exit 1; }
done
command -v lego >/dev/null || { echo "lego is missing (scripts/install-test-deps.sh installs it)"; exit 1; }
BIN="$(cd "$BIN" && pwd)"

W="$(mktemp -d /tmp/certhub-multinode.XXXXXX)"
DB="certhub_mn_$$"
DBURL="postgres://postgres@$PGHOST/$DB"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then
    echo "kept $W and database $DB"
  else
    "${PSQL[@]}" -d test -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$W"
  fi
}
trap cleanup EXIT
trap "exit 130" INT TERM

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { # check DESCRIPTION EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (expected '$2', got '$3')"; fi
}
q() { "${PSQL[@]}" -d "$DB" -Atc "$1"; }

free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r FRONT DNS MGMT WEBPORT T1P T2P T3P H1 H2 H3 <<<"$(free_ports 10)"
TLS=("" "$T1P" "$T2P" "$T3P")
HTTP=("" "$H1" "$H2" "$H3")
PUBLIC="http://127.0.0.1:$FRONT"
export CERTHUB_KEK
CERTHUB_KEK="$(head -c 32 /dev/urandom | base64)"
export CERTHUB_LEASE_SECONDS=5 CERTHUB_DATABASE_URL="$DBURL" CERTHUB_LOG="info,sqlx=warn,hyper=warn"

"${PSQL[@]}" -d test -c "CREATE DATABASE $DB" >/dev/null || { echo "cannot create database $DB"; exit 1; }

# ---- helpers ----------------------------------------------------------------
write_config() { # DIR
  mkdir -p "$1"
  cat >"$1/certhub.toml" <<EOF
[validation]
resolver = "127.0.0.1:$DNS"
http01_port = $WEBPORT
allow_loopback = true

[testing]
allow_clock_override = true
EOF
  # Everything comes from one IP and a few API keys: lift the abuse ceilings.
  if grep -qa 'acme_new_order' "$BIN/certhub"; then
    cat >>"$1/certhub.toml" <<EOF

[rate_limits]
per_api_key = { max = 0, window_secs = 1 }
per_ip = { max = 0, window_secs = 1 }
acme_new_order = { max = 0, window_secs = 1 }
EOF
  fi
}
for i in 1 2 3; do write_config "$W/node$i"; done
write_config "$W/cli"
cli() { "$BIN/certhub" --data-dir "$W/cli" "$@"; }

NODE_PID=("" "" "" "")
OFFSET=0 # seconds the nodes' clocks run ahead of the system clock
start_node() { # I
  local i=$1 now=()
  if [ "$OFFSET" != 0 ]; then now=(--now "$(date -u -d "@$(($(date +%s) + OFFSET))" +%Y-%m-%dT%H:%M:%SZ)"); fi
  "$BIN/certhub" --data-dir "$W/node$i" "${now[@]}" serve --listen "127.0.0.1:${TLS[$i]}" \
    --http-listen "127.0.0.1:${HTTP[$i]}" --public-url "$PUBLIC" --pki-url "$PUBLIC" \
    >>"$W/node$i.log" 2>&1 &
  NODE_PID[$i]=$!
  PIDS+=("$!")
}
owner_of() { echo "$(cat /etc/hostname 2>/dev/null || echo node)-${NODE_PID[$1]}"; }
wait_healthy() { # URL
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$1/healthz" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}
kill_node() { kill -9 "${NODE_PID[$1]}" 2>/dev/null; wait "${NODE_PID[$1]}" 2>/dev/null; }
stop_nodes() { for i in 1 2 3; do kill_node "$i"; done; }
api() { # METHOD PATH KEY [JSON [CURL-ARGS...]]
  local args=(-sS -X "$1" -H "Authorization: ApiKey $3" -H 'Content-Type: application/json') path=$2
  [ $# -ge 4 ] && args+=(--data "$4")
  shift $(($# < 4 ? $# : 4))
  curl "${args[@]}" "$@" "$PUBLIC$path"
}
crl_number() { # prints the CRL number of the DV CRL fetched from node I
  curl -fsS "http://127.0.0.1:${HTTP[$1]}/crl/dv.crl" -o "$W/crl$1.der" &&
    openssl crl -inform DER -in "$W/crl$1.der" -noout -crlnumber | sed 's/.*=//' | python3 -c 'import sys; print(int(sys.stdin.read().strip(), 16))'
}

# ---- infrastructure ---------------------------------------------------------
"$BIN/certhub-testdns" --dns "127.0.0.1:$DNS" --mgmt "127.0.0.1:$MGMT" --default-a 127.0.0.1 >"$W/dns.log" 2>&1 &
PIDS+=("$!")
mkdir -p "$W/web/.well-known/acme-challenge"
python3 -m http.server "$WEBPORT" --bind 127.0.0.1 --directory "$W/web" >"$W/web.log" 2>&1 &
PIDS+=("$!")
"$BIN/certhub-rrproxy" --listen "127.0.0.1:$FRONT" --backend "127.0.0.1:$H1" --backend "127.0.0.1:$H2" \
  --backend "127.0.0.1:$H3" >"$W/proxy.log" 2>&1 &
PIDS+=("$!")

echo "== three nodes start at once on a fresh database ($W)"
for i in 1 2 3; do start_node "$i"; done
up=0
for i in 1 2 3; do wait_healthy "http://127.0.0.1:${HTTP[$i]}" && up=$((up + 1)); done
check "all three nodes started together (concurrent migrate, CA init, catalogue seed)" 3 "$up"
if [ "$up" != 3 ]; then tail -n 20 "$W"/node*.log; echo "$PASS passed, $((FAIL + 1)) failed"; exit 1; fi
wait_healthy "$PUBLIC" || bad "proxy not answering"
check "one CA hierarchy in the database" 1 "$(q "SELECT COUNT(*) FROM ca_issuers WHERE parent IS NULL")"
check "migrations applied once each" "$(q "SELECT COUNT(*) FROM schema_migrations")" "$(q "SELECT COUNT(DISTINCT version) FROM schema_migrations")"
roots=$(for i in 1 2 3; do curl -fsS "http://127.0.0.1:${HTTP[$i]}/issuer/root.cer" | sha256sum; done | sort -u | wc -l)
check "every node serves the same root" 1 "$roots"
cli ca bundle >"$W/root.pem"

# ---- customers (operator CLI) and subscriptions (REST via the proxy) ---------
price() { q "SELECT price FROM prices WHERE product='sectigo_dv_acme' AND action='$1' AND period=1 AND currency='EUR'"; }
CREATE_PRICE=$(price CREATE)
RENEW_PRICE=$(price RENEW)
echo "   DV ACME 1-month prices: create $CREATE_PRICE, renew $RENEW_PRICE cents"
declare -A KEY
for c in mn-rich mn-manual mn-poor; do
  cli admin customer create "$c" >/dev/null
  KEY[$c]=$(cli admin apikey create "$c")
done
cli admin credit add mn-rich 10000000 >/dev/null
cli admin credit add mn-manual 10000000 >/dev/null
cli admin credit add mn-poor $((8 * CREATE_PRICE)) >/dev/null
NSUB=8
: >"$W/subs.txt"
for c in mn-rich mn-manual mn-poor; do
  auto=true
  [ "$c" = mn-manual ] && auto=false
  for n in $(seq 1 $NSUB); do
    body="{\"customer\":\"$c\",\"product\":\"sectigo_dv_acme\",\"domainNames\":[\"s$n.$c.example.com\"],\"period\":1,\"autoRenew\":$auto}"
    api POST /v2/ssl/acme "${KEY[$c]}" "$body" >"$W/sub.json"
    python3 - "$c" "$n" "$W/sub.json" >>"$W/subs.txt" <<'EOF' || echo "bad response: $(cat "$W/sub.json")" >&2
import json, sys
b = json.load(open(sys.argv[3]))
print(sys.argv[1], f"s{sys.argv[2]}.{sys.argv[1]}.example.com", b["id"], b["accountKey"], b["hmacKey"], b["directoryUrl"])
EOF
  done
done
cli admin credit add mn-poor $((3 * RENEW_PRICE)) >/dev/null
check "24 subscriptions created over REST through three nodes" 24 "$(wc -l <"$W/subs.txt")"
# Bulk: enough lifecycle work that two engines overlap and a node can be
# killed while it holds leases.
NBULK=150
cli admin customer create mn-bulk >/dev/null
KEY[mn-bulk]=$(cli admin apikey create mn-bulk)
cli admin credit add mn-bulk $((NBULK * CREATE_PRICE)) >/dev/null
bulk_ok=0
for n in $(seq 1 $NBULK); do
  code=$(api POST /v2/ssl/acme "${KEY[mn-bulk]}" "{\"customer\":\"mn-bulk\",\"product\":\"sectigo_dv_acme\",\"domainNames\":[\"b$n.mn-bulk.example.com\"],\"period\":1,\"autoRenew\":false}" -o /dev/null -w '%{http_code}')
  [ "$code" = 201 ] && bulk_ok=$((bulk_ok + 1))
done
check "$NBULK more subscriptions (mn-bulk) created over REST" "$NBULK" "$bulk_ok"
check "subscriptions in the database" $((24 + NBULK)) "$(q "SELECT COUNT(*) FROM subscriptions")"

# ---- ACME issuance with lego, node 2 killed and restarted mid-run ------------
echo "== lego issuance through the proxy (4 parallel), node 2 SIGKILLed mid-run"
issue() { # CUSTOMER DOMAIN KID HMAC DIRECTORY
  local d="$W/lego/$2"
  mkdir -p "$d"
  for attempt in 1 2; do
    if LEGO_CA_CERTIFICATES="$W/root.pem" timeout 180 lego --accept-tos --server "$5" --email "ops@$2" \
      --eab --kid "$3" --hmac "$4" --domains "$2" --http --http.webroot "$W/web" --path "$d" run \
      >>"$d/out.log" 2>&1; then
      echo "$2" >>"$W/issued.txt"
      return 0
    fi
    echo "attempt $attempt failed" >>"$d/out.log"
  done
  echo "$2" >>"$W/lego-failed.txt"
}
: >"$W/issued.txt"
: >"$W/lego-failed.txt"
grep -v '^mn-poor' "$W/subs.txt" >"$W/acme-subs.txt"
( n=0
  while read -r c dom _id kid hmac dir; do
    issue "$c" "$dom" "$kid" "$hmac" "$dir" &
    n=$((n + 1))
    [ $((n % 4)) = 0 ] && wait
  done <"$W/acme-subs.txt"
  wait ) &
LEGO_ALL=$!
# Kill node 2 once issuance is under way (some orders exist), restart it.
for _ in $(seq 1 300); do
  [ "$(q "SELECT COUNT(*) FROM acme_orders")" -ge 3 ] && break
  sleep 0.1
done
kill_node 2
echo "   node 2 killed after $(q "SELECT COUNT(*) FROM acme_orders") orders"
sleep 3
start_node 2
wait_healthy "http://127.0.0.1:$H2" && ok "node 2 restarted" || bad "node 2 did not restart"
wait "$LEGO_ALL"
NACME=$(wc -l <"$W/acme-subs.txt")
NISSUED=$(wc -l <"$W/issued.txt")
echo "   lego: $NISSUED of $NACME certificates issued; failed: $(tr '\n' ' ' <"$W/lego-failed.txt")"
check "every lego run issued a certificate (retrying once after the kill)" "$NACME" "$NISSUED"
# A validation whose node died is re-run by another node's engine after 60 s.
for _ in $(seq 1 100); do
  [ "$(q "SELECT COUNT(*) FROM acme_authzs WHERE chall_status = 'processing'")" = 0 ] && break
  sleep 1
done
check "no authorisation left processing" 0 "$(q "SELECT COUNT(*) FROM acme_authzs WHERE chall_status = 'processing'")"
check "no order left processing" 0 "$(q "SELECT COUNT(*) FROM acme_orders WHERE status = 'processing'")"
echo "   orders by status: $(q "SELECT string_agg(status || '=' || n, ' ') FROM (SELECT status, COUNT(*) n FROM acme_orders GROUP BY status) s")"
check "every valid order has exactly one certificate" 0 "$(q "SELECT COUNT(*) FROM acme_orders o WHERE o.status = 'valid' AND (SELECT COUNT(*) FROM certificates c WHERE c.acme_order_id = o.id) <> 1")"
check "every ACME certificate belongs to a valid order" 0 "$(q "SELECT COUNT(*) FROM certificates c JOIN acme_orders o ON o.id = c.acme_order_id WHERE o.status <> 'valid'")"
# lego deactivates its authorisations when a request fails (a 502 from the
# killed node): that invalidates the order without an error document.
check "invalid orders carry an error or a deactivated authorisation" 0 "$(q "SELECT COUNT(*) FROM acme_orders o WHERE o.status = 'invalid' AND o.error IS NULL AND NOT EXISTS (SELECT 1 FROM acme_order_authzs oa JOIN acme_authzs z ON z.id = oa.authz_id WHERE oa.order_id = o.id AND z.status = 'deactivated')")"
missing=0
while read -r dom; do
  [ -n "$dom" ] || continue
  f="$W/lego/$dom/certificates/$dom.crt"
  s=$(openssl x509 -in "$f" -noout -serial 2>/dev/null | sed 's/serial=//' | tr 'A-F' 'a-f' | sed 's/^0*//')
  [ "$(q "SELECT COUNT(*) FROM certificates WHERE ltrim(lower(serial_hex), '0') = '$s'")" = 1 ] || missing=$((missing + 1))
done <"$W/issued.txt"
check "each certificate lego received is in the database once" 0 "$missing"
check "certificate serials unique" 0 "$(q "SELECT COUNT(*) FROM (SELECT issuer_id, serial_hex FROM certificates GROUP BY 1, 2 HAVING COUNT(*) > 1) d")"
check "used nonces recorded in the shared table" 1 "$(q "SELECT (COUNT(*) > 0)::int FROM acme_nonces")"
served=0
for i in 1 2 3; do
  n=$(curl -fsS "http://127.0.0.1:${HTTP[$i]}/metrics" | awk '/^certhub_http_requests/ {print int($2)}' | head -1)
  [ "${n:-0}" -gt 0 ] && served=$((served + 1))
done
check "all three nodes served requests" 3 "$served"

# ---- concurrent revocations: CRL numbers and contents across processes -------
echo "== six revocations from three concurrent operator processes"
c0=$(crl_number 1)
mapfile -t SERIALS < <(q "SELECT serial_hex FROM certificates WHERE acme_order_id IS NOT NULL AND revoked_at IS NULL ORDER BY id LIMIT 6")
REV=()
for k in 0 1 2; do
  ( for j in $k $((k + 3)); do
      [ -n "${SERIALS[$j]:-}" ] && cli admin cert revoke "${SERIALS[$j]}" --reason superseded >/dev/null 2>>"$W/revoke.log"
    done ) &
  REV+=("$!")
done
wait "${REV[@]}"
check "six certificates revoked, each by one operator command" "6 0" "$(q "SELECT COUNT(*) FROM certificates WHERE revoked_at IS NOT NULL") $(grep -c . "$W/revoke.log")"
declare -a NUMS
for i in 1 2 3; do NUMS[$i]=$(crl_number "$i"); done
check "all nodes serve the same, newest CRL" "$(q "SELECT next - 1 FROM crl_numbers WHERE issuer = 'dv'")" "$(printf '%s\n' "${NUMS[@]:1}" | sort -u | tr -d '\n')"
[ "${NUMS[1]:-0}" -gt "${c0:-0}" ] && ok "CRL number increased (${c0:-0} -> ${NUMS[1]})" || bad "CRL number did not increase (${c0:-?} -> ${NUMS[1]:-?})"
listed=$(openssl crl -inform DER -in "$W/crl1.der" -noout -text | grep -c 'Serial Number')
check "the newest CRL lists every revoked DV certificate" "$(q "SELECT COUNT(*) FROM certificates WHERE revoked_at IS NOT NULL AND issuer_id = 'dv' AND imported = 0")" "$listed"

# ---- lifecycle phase 1: two CLI engines race at T1 ----------------------------
T0=$(date +%s)
T1=$((T0 + 40 * 86400))
T1S=$(date -u -d "@$T1" +%Y-%m-%dT%H:%M:%SZ)
echo "== lifecycle at $T1S: two 'certhub lifecycle run' processes at once"
cli lifecycle run --at "$T1S" >"$W/run-a.txt" 2>"$W/run-a.err" &
ra=$!
cli lifecycle run --at "$T1S" >"$W/run-b.txt" 2>"$W/run-b.err" &
rb=$!
wait $ra $rb
renewed_a=$(cat "$W/run-a.txt" "$W/run-b.txt" | grep -c 'RENEWED')
echo "   run A: $(wc -l <"$W/run-a.txt") changes, run B: $(wc -l <"$W/run-b.txt") changes"
check "no change printed by both runs" 0 "$(sort "$W/run-a.txt" "$W/run-b.txt" | uniq -d | wc -l)"
check "auto-renewals at T1: 8 (mn-rich) + 3 (mn-poor, credit for 3)" 11 "$renewed_a"
check "suspensions at T1: 8 (mn-manual) + 5 (mn-poor) + $NBULK (mn-bulk)" $((13 + NBULK)) "$(cat "$W/run-a.txt" "$W/run-b.txt" | grep -c 'SUSPENDED')"
check "every job due at T1 done" 0 "$(q "SELECT COUNT(*) FROM jobs WHERE done_at IS NULL AND due_at <= $T1")"
echo "   statuses after T1: $(q "SELECT string_agg(h || ':' || st || '=' || n, ' ') FROM (SELECT c.handle h, s.status st, COUNT(*) n FROM subscriptions s JOIN customers c ON c.id = s.customer_id GROUP BY 1, 2 ORDER BY 1, 2) x")"

# ---- lifecycle phase 2: the nodes' own engines at T2, node 2 killed ----------
T2=$((T0 + 75 * 86400))
echo "== nodes restarted with clocks at $(date -u -d "@$T2" +%Y-%m-%dT%H:%M:%SZ); their engines run the due jobs"
stop_nodes
OFFSET=$((T2 - $(date +%s)))
# Node 2 first, so it is the one holding leases when it is killed.
start_node 2
O2=$(owner_of 2)
held=0
for _ in $(seq 1 300); do
  held=$(q "SELECT COUNT(*) FROM jobs WHERE lease_owner = '$O2' AND done_at IS NULL")
  [ "$held" -gt 0 ] && break
  sleep 0.02
done
kill_node 2
ORPHANS=$(q "SELECT COALESCE(string_agg(id::text, ','), '') FROM jobs WHERE lease_owner = '$O2' AND done_at IS NULL")
echo "   node 2 killed holding unfinished leased job(s): ${ORPHANS:-none}"
start_node 1
start_node 3
wait_healthy "http://127.0.0.1:$H1"
wait_healthy "http://127.0.0.1:$H3"
# REST reads keep flowing through the proxy meanwhile (node 2 is skipped).
codes=$(for _ in $(seq 1 9); do curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: ApiKey ${KEY[mn-rich]}" "$PUBLIC/v2/ssl/acme?limit=1"; done | sort -u | tr '\n' ' ')
check "REST through the proxy with node 2 down" "200 " "$codes"
sleep $((CERTHUB_LEASE_SECONDS + 3))
start_node 2
wait_healthy "http://127.0.0.1:$H2" && ok "node 2 restarted at the shifted clock" || bad "node 2 did not restart"
# The engines wake at least every 30 s; wait until nothing due is left.
for _ in $(seq 1 90); do
  due=$(q "SELECT COUNT(*) FROM jobs WHERE done_at IS NULL AND due_at <= $T2")
  [ "$due" = 0 ] && break
  sleep 1
done
check "every job due at T2 done" 0 "$due"
check "the dead node's leases expired and other nodes finished its jobs" 0 "$(q "SELECT COUNT(*) FROM jobs WHERE lease_owner = '$O2' AND done_at IS NULL")"
if [ -n "$ORPHANS" ]; then
  # Another node re-claims them after the lease (or a later job cancels them).
  check "jobs orphaned by the kill were all finished later" 0 "$(q "SELECT COUNT(*) FROM jobs WHERE id IN ($ORPHANS) AND done_at IS NULL")"
  check "orphaned jobs were taken over by another node after the lease" 1 \
    "$(q "SELECT (COUNT(*) > 0)::int FROM jobs WHERE id IN ($ORPHANS) AND lease_owner <> '$O2' AND attempts >= 2")"
else
  echo "   (node 2 held no lease at the kill this time: lease take-over not exercised)"
fi
echo "   jobs finished by each engine: $(q "SELECT string_agg(lease_owner || '=' || n, ' ') FROM (SELECT lease_owner, COUNT(*) n FROM jobs WHERE done_at IS NOT NULL AND lease_owner IS NOT NULL GROUP BY 1) x")"

# ---- exactly once, and the money --------------------------------------------
echo "== transitions exactly once, ledger"
per_sub() { # CUSTOMER SQL-EXPR-PER-SUBSCRIPTION -> distinct values
  q "SELECT string_agg(DISTINCT v::text, ',') FROM (SELECT ($2) v FROM subscriptions s JOIN customers c ON c.id = s.customer_id WHERE c.handle = '$1') x"
}
renews="(SELECT COUNT(*) FROM transactions t WHERE t.kind = 'CHARGE' AND t.process_action = 'renew' AND t.subject_id = s.id)"
creates="(SELECT COUNT(*) FROM transactions t WHERE t.kind = 'CHARGE' AND t.process_action = 'create' AND t.subject_id = s.id)"
check "mn-rich: every subscription charged for create exactly once" 1 "$(per_sub mn-rich "$creates")"
check "mn-rich: every subscription auto-renewed exactly twice (T1, T2)" 2 "$(per_sub mn-rich "$renews")"
check "mn-rich: all ACTIVE" ACTIVE "$(per_sub mn-rich "s.status")"
check "mn-manual: never charged for renew" 0 "$(per_sub mn-manual "$renews")"
check "mn-manual: all REVOKED 30 days after expiry" REVOKED "$(per_sub mn-manual "s.status")"
check "mn-bulk: all REVOKED, charged once for create, never for renew" "REVOKED 1 0" "$(per_sub mn-bulk "s.status") $(per_sub mn-bulk "$creates") $(per_sub mn-bulk "$renews")"
check "mn-manual: exactly one SUSPENDED and one REVOKED notification each" "1,1" "$(q "SELECT string_agg(DISTINCT a::text || ',' || b::text, ';') FROM (SELECT s.id, (SELECT COUNT(*) FROM notifications n WHERE n.customer_id = s.customer_id AND n.event_type = 'ACME_SUBSCRIPTION_SUSPENDED' AND n.process_identifier = s.id::text) a, (SELECT COUNT(*) FROM notifications n WHERE n.customer_id = s.customer_id AND n.event_type = 'ACME_SUBSCRIPTION_REVOKED' AND n.process_identifier = s.id::text) b FROM subscriptions s JOIN customers c ON c.id = s.customer_id WHERE c.handle = 'mn-manual') x")"
check "mn-poor: exactly 3 renewals in total (credit for 3)" 3 "$(q "SELECT COUNT(*) FROM transactions t JOIN customers c ON c.id = t.customer_id WHERE c.handle = 'mn-poor' AND t.kind = 'CHARGE' AND t.process_action = 'renew'")"
check "mn-poor: balance 0" 0 "$(q "SELECT a.balance FROM credit_accounts a JOIN customers c ON c.id = a.customer_id WHERE c.handle = 'mn-poor'")"
check "mn-poor: failed auto-renewals recorded as FAILED processes, uncharged" 0 "$(q "SELECT COUNT(*) FROM processes p JOIN transactions t ON t.process_id = p.id WHERE p.action = 'renew' AND p.status = 'FAILED'")"
check "no process charged twice" 0 "$(q "SELECT COUNT(*) FROM (SELECT process_id FROM transactions WHERE kind = 'CHARGE' AND process_id IS NOT NULL GROUP BY process_id HAVING COUNT(*) > 1) d")"
check "renew processes completed == renew charges" "$(q "SELECT COUNT(*) FROM transactions WHERE kind = 'CHARGE' AND process_action = 'renew'")" "$(q "SELECT COUNT(*) FROM processes WHERE action = 'renew' AND status = 'COMPLETED'")"
check "lifecycle changes audited once per job (no transition twice)" 0 "$(q "SELECT COUNT(*) FROM (SELECT action, subject, detail FROM audit WHERE actor = 'lifecycle' GROUP BY 1, 2, 3 HAVING COUNT(*) > 1) d")"
check "ledger balances to the cent: sum(transactions) == balance + reservation, per customer" 0 \
  "$(q "SELECT COUNT(*) FROM credit_accounts a WHERE a.balance + a.reservation <> COALESCE((SELECT SUM(t.amount) FROM transactions t WHERE t.customer_id = a.customer_id AND t.currency = a.currency), 0)")"
check "no negative balance or reservation" 0 "$(q "SELECT COUNT(*) FROM credit_accounts WHERE balance < 0 OR reservation < 0")"
for c in mn-rich mn-manual mn-poor; do
  echo "   $c: $(q "SELECT 'balance=' || a.balance || ' reservation=' || a.reservation || ' ledger=' || (SELECT SUM(amount) FROM transactions t WHERE t.customer_id = a.customer_id) FROM credit_accounts a JOIN customers c ON c.id = a.customer_id WHERE c.handle = '$c'")"
done
final=()
for i in 1 2 3; do final+=("$(crl_number "$i")"); done
[ "${final[0]:-0}" -ge "${NUMS[1]:-0}" ] && ok "CRL numbers monotonic across the run (${c0:-0} -> ${NUMS[1]:-?} -> ${final[0]:-?})" || bad "CRL number went back (${NUMS[1]:-?} -> ${final[0]:-?})"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
