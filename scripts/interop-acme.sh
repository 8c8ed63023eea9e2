#!/usr/bin/env bash
# Interop test of certhub's ACME server with real clients (Debian's certbot
# and lego), on SQLite and on PostgreSQL (a fresh database on
# 127.0.0.1:5432, dropped at the end; skipped when PostgreSQL is absent).
#
# For each backend: start certhub-testdns (DNS answering 127.0.0.1, with a
# pebble-challtestsrv-compatible management API for TXT records) and
# `certhub serve` on free loopback ports, create a customer, API key, credit
# and ACME subscriptions, then drive the clients:
#   certbot: register with EAB, http-01 (two names), dns-01 (wildcard + base,
#            manual hooks), renew, revoke;
#   lego:    http-01 (two names), tls-alpn-01, dns-01 (wildcard + base,
#            exec provider), renew, revoke, two accounts from one EAB;
# every chain checked with `openssl verify`, revocations with OCSP; and the
# negative paths (name outside the subscription, SUSPENDED subscription,
# PENDING_ORGANIZATION_VALIDATION subscription, wrong EAB HMAC key), where
# the client must fail and show the server's problem detail (lego prints it;
# certbot 2.1 on Debian crashes with "AttributeError: can't set attribute"
# on any problem document, so its letsencrypt.log is searched instead).
#
# Prints PASS/FAIL per check and ends with "N passed, M failed".
# Environment: CARGO_TARGET_DIR (binaries in $CARGO_TARGET_DIR/debug),
# KEEP_TMP=1 keeps the work directory, INTEROP_BACKENDS="sqlite postgres",
# PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/test; the test
# database is created next to it).
set -uo pipefail
export NO_COLOR=1   # plain server logs

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
BIN=$TARGET/debug
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/test}

PASSED=0
FAILED=0
PIDS=()
PG_DB=""
WORK=$(mktemp -d "${TMPDIR:-/tmp}/certhub-interop-acme.XXXXXX")
BACKEND=""

cleanup() {
  kill_started
  drop_pg_db
  if [ "${KEEP_TMP:-0}" = 1 ] || [ "$FAILED" -gt 0 ]; then
    echo "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { PASSED=$((PASSED + 1)); echo "PASS [$BACKEND] $1"; }
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL [$BACKEND] $1"
  if [ -n "${2:-}" ] && [ -f "$2" ]; then
    echo "---- last lines of $2"
    tail -n 15 "$2" | sed 's/^/    /'
    echo "----"
  fi
}
# check NAME LOGFILE COMMAND...: PASS when the command succeeds.
check() {
  local name=$1 log=$2
  shift 2
  if "$@"; then pass "$name"; else fail "$name" "$log"; fi
}

# A fatal error ends this backend's run (a subshell), counted as one failure.
die() { echo "FAIL [$BACKEND] fatal: $*"; FAILED=$((FAILED + 1)); exit 1; }

# Ends the processes this script started (by pid), forcefully after 5 s.
kill_started() {
  local pid i
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || continue
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  PIDS=()
}

# Free loopback ports (TCP and UDP, since the DNS port needs both).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
n = int(sys.argv[1]); held = []; out = []
while len(out) < n:
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0)); port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close(); continue
    held += [t, u]; out.append(port)
print(" ".join(map(str, out)))
EOF
}

json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# A valid-looking EAB MAC key that is not the subscription's.
random_hmac() {
  local k
  k=$(openssl rand 32 | base64 | tr '+/' '-_' | tr -d '=\n')
  echo "A${k:1}"
}

drop_pg_db() {
  [ -n "$PG_DB" ] || return 0
  psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 ||
    echo "warning: could not drop database $PG_DB"
  PG_DB=""
}

leaf_of() { openssl x509 -in "$1" -out "$2" 2>/dev/null; }

# verify_chain NAME LEAF CHAIN: openssl verify against our root only.
verify_chain() {
  local out=$D/verify-$1.txt
  if openssl verify -CAfile "$D/root.pem" -untrusted "$3" "$2" >"$out" 2>&1; then
    pass "$1: openssl verify chain"
  else
    fail "$1: openssl verify chain" "$out"
  fi
}

serial_of() { openssl x509 -in "$1" -noout -serial 2>/dev/null; }

# has_sans CERT NAME...: every NAME is a SAN of CERT.
has_sans() {
  local cert=$1 sans n
  shift
  sans=$(openssl x509 -in "$cert" -noout -ext subjectAltName 2>/dev/null) || return 1
  for n in "$@"; do grep -qF "DNS:$n" <<<"$sans" || return 1; done
}

# ocsp_status LEAF ISSUER: prints good / revoked / unknown as the responder says.
ocsp_status() {
  openssl ocsp -issuer "$2" -cert "$1" -url "http://127.0.0.1:$HTTPS_PORT/ocsp/dv" \
    -CAfile "$D/root.pem" 2>/dev/null | awk -F': ' -v c="$1" '$1 == c { print $2; exit }'
}

certhub() {
  "$BIN/certhub" --data-dir "$D/data" --config "$D/certhub.toml" ${DB_URL:+--database-url "$DB_URL"} "$@"
}

api() { # api METHOD PATH [JSON]
  curl -sS --cacert "$D/root.pem" -X "$1" -H "Authorization: ApiKey $API_KEY" \
    -H 'Content-Type: application/json' ${3:+-d "$3"} "https://localhost:$HTTPS_PORT$2"
}

# cb NAME CONFIGDIR ARGS...: certbot with its own config, work and log dirs; the
# log dir is per invocation so negative checks read the right letsencrypt.log.
cb() {
  local name=$1 cfg=$2
  shift 2
  mkdir -p "$D/cblog/$name"
  REQUESTS_CA_BUNDLE=$D/root.pem timeout 180 certbot --non-interactive \
    --config-dir "$D/$cfg/etc" --work-dir "$D/$cfg/work" --logs-dir "$D/cblog/$name" \
    "$@" >"$D/cb-$name.out" 2>&1
}
cblog() { echo "$D/cblog/$1/letsencrypt.log"; }

# lg NAME PATH KID HMAC ARGS...: lego with its own --path; output in lg-NAME.out.
lg() {
  local name=$1 path=$2 kid=$3 hmac=$4
  shift 4
  LEGO_CA_CERTIFICATES=$D/root.pem MGMT=$MGMT EXEC_PATH=$D/lego-dns-hook.sh \
    EXEC_SEQUENCE_INTERVAL=1 EXEC_POLLING_INTERVAL=1 EXEC_PROPAGATION_TIMEOUT=30 \
    timeout 180 lego --accept-tos --email "ops@example.com" --server "$DIR_URL" \
    --eab --kid "$kid" --hmac "$hmac" --path "$D/$path" "$@" >"$D/lg-$name.out" 2>&1
}

# negative NAME LOGFILE PATTERN RC: the client failed (RC != 0) and LOGFILE
# contains the server's problem detail PATTERN.
negative() {
  local name=$1 log=$2 pattern=$3 rc=$4
  if [ "$rc" -eq 0 ]; then
    fail "$name: client should have failed" "$log"
  elif grep -qF -- "$pattern" "$log" 2>/dev/null; then
    pass "$name: fails with \"$pattern\""
  else
    fail "$name: problem detail \"$pattern\" not shown" "$log"
  fi
}

write_hooks() {
  # lego --dns exec: $1 = present|cleanup, $2 = FQDN (with dot), $3 = value.
  cat >"$D/lego-dns-hook.sh" <<'EOF'
#!/bin/sh
case "$1" in
  present) curl -sf -d "{\"host\":\"$2\",\"value\":\"$3\"}" "$MGMT/set-txt" ;;
  cleanup) curl -sf -d "{\"host\":\"$2\"}" "$MGMT/clear-txt" ;;
  *) exit 0 ;;
esac
EOF
  # certbot --manual hooks. set-txt adds a value, so wildcard and base name
  # (two values at one _acme-challenge name) are both present at once.
  cat >"$D/certbot-auth-hook.sh" <<'EOF'
#!/bin/sh
curl -sf -d "{\"host\":\"_acme-challenge.$CERTBOT_DOMAIN.\",\"value\":\"$CERTBOT_VALIDATION\"}" "$MGMT/set-txt"
EOF
  cat >"$D/certbot-cleanup-hook.sh" <<'EOF'
#!/bin/sh
curl -sf -d "{\"host\":\"_acme-challenge.$CERTBOT_DOMAIN.\"}" "$MGMT/clear-txt"
EOF
  chmod +x "$D"/*.sh
}

start_servers() {
  read -r HTTPS_PORT DNS_PORT MGMT_PORT HTTP01_PORT ALPN_PORT <<<"$(free_ports 5)"
  MGMT=http://127.0.0.1:$MGMT_PORT
  cat >"$D/certhub.toml" <<EOF
[validation]
allow_loopback = true
resolver = "127.0.0.1:$DNS_PORT"
http01_port = $HTTP01_PORT
tlsalpn01_port = $ALPN_PORT

[testing]
allow_clock_override = true
EOF
  "$BIN/certhub-testdns" --dns "127.0.0.1:$DNS_PORT" --mgmt "127.0.0.1:$MGMT_PORT" \
    --default-a 127.0.0.1 >"$D/testdns.log" 2>&1 &
  PIDS+=($!)
  # The binary itself, not the certhub() wrapper: $! must be the server's pid.
  # Debug level, so that the secret scan at the end reads everything logged.
  CERTHUB_LOG=debug,hyper=info,h2=info,rustls=info \
  "$BIN/certhub" --data-dir "$D/data" --config "$D/certhub.toml" ${DB_URL:+--database-url "$DB_URL"} \
    serve --listen "127.0.0.1:$HTTPS_PORT" --public-url "https://localhost:$HTTPS_PORT" \
    >"$D/serve.log" 2>&1 &
  PIDS+=($!)
  local i
  for i in $(seq 1 150); do
    if curl -sfk "https://127.0.0.1:$HTTPS_PORT/healthz" >/dev/null 2>&1 &&
      curl -sf -o /dev/null -d '{"host":"probe.","value":"x"}' "$MGMT/set-txt" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  tail -n 20 "$D/serve.log" "$D/testdns.log" >&2
  die "server or test DNS did not come up"
}

setup_account_data() {
  certhub ca bundle >"$D/root.pem" || die "certhub ca bundle"
  certhub admin customer create acme-corp >/dev/null || die "customer create"
  API_KEY=$(certhub admin apikey create acme-corp) || die "apikey create"
  certhub admin credit add acme-corp 10000000 >/dev/null || die "credit add"
  # The operator's price change is checked and audited (same price as seeded).
  certhub admin price set sectigo_dv_acme RENEW 12 4900 >/dev/null || die "price set"
  if certhub admin price set sectigo_dv_acme RENEW 7 1 >/dev/null 2>&1; then
    die "price set accepted a period the product does not offer"
  fi
  certhub admin audit --action price. | grep -q "RENEW 12 EUR 4900" ||
    die "price set is not in the audit trail"
}

# create_sub FILE JSON: POST /v2/ssl/acme, response saved in FILE.
create_sub() {
  api POST /v2/ssl/acme "$2" >"$1" 2>&1
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["hmacKey"] and d["accountKey"]' "$1" 2>/dev/null ||
    die "subscription not created: $(cat "$1")"
}

# Secret scan of the whole run (issue 9): the API key and every EAB MAC key
# handed out (as returned, and as standard base64 and hex of its bytes) must
# not appear in the server's debug-level log, nor, on SQLite, in the database
# and WAL files. The clients' own files are not scanned: they were given them.
scan_secrets() {
  local out=$D/secret-scan.txt files=("$D/serve.log")
  [ "$BACKEND" = sqlite ] && files+=("$D"/data/certhub.db*)
  if API_KEY=$API_KEY python3 - "$D" "${files[@]}" >"$out" 2>&1 <<'PY'
import base64, glob, json, os, sys
d, files = sys.argv[1], sys.argv[2:]
def hmacs(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "hmacKey" and isinstance(x, str):
                yield x
            else:
                yield from hmacs(x)
    elif isinstance(v, list):
        for x in v:
            yield from hmacs(x)
secrets = {"API key": os.environ["API_KEY"]}
for f in glob.glob(os.path.join(d, "*.json")):
    try:
        doc = json.load(open(f))
    except (ValueError, OSError):
        continue
    for i, h in enumerate(hmacs(doc)):
        raw = base64.urlsafe_b64decode(h + "=" * (-len(h) % 4))
        name = f"hmacKey of {os.path.basename(f)}"
        secrets[name] = h
        secrets[name + " (base64)"] = base64.b64encode(raw).decode().rstrip("=")
        secrets[name + " (hex)"] = raw.hex()
assert len(secrets) >= 4, f"too few secrets collected: {list(secrets)}"
found = 0
for f in files:
    data = open(f, "rb").read()
    for name, value in secrets.items():
        if value.encode() in data or value.lower().encode() in data.lower():
            print(f"{name} found in {f}")
            found += 1
print(f"{len(secrets)} secret forms, {len(files)} files, {found} findings")
sys.exit(1 if found else 0)
PY
  then
    pass "secret scan of the server log$( [ "$BACKEND" = sqlite ] && echo ' and database'): $(tail -1 "$out")"
  else
    fail "secret scan of the server log and database" "$out"
  fi
}

run_backend() {
  BACKEND=$1
  DB_URL=$2
  D=$WORK/$BACKEND
  mkdir -p "$D"
  local t0=$SECONDS rc
  write_hooks
  start_servers
  setup_account_data
  pass "server up (https 127.0.0.1:$HTTPS_PORT, dns 127.0.0.1:$DNS_PORT)"

  # SUSPENDED subscription first: `lifecycle run --at` one month ahead must
  # not touch the subscriptions created afterwards.
  create_sub "$D/sub-susp.json" '{"customer":"acme-corp","product":"sectigo_dv_acme","domainNames":["susp.example.com"],"period":1,"autoRenew":false}'
  local susp_id expiry at
  susp_id=$(json_field "$D/sub-susp.json" id)
  expiry=$(api GET "/v2/ssl/acme/$susp_id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["expiryDate"])')
  at=$(date -u -d "$expiry + 1 second" +%Y-%m-%dT%H:%M:%SZ)
  certhub lifecycle run --at "$at" >"$D/lifecycle.out" 2>&1
  if api GET "/v2/ssl/acme/$susp_id" | grep -q '"status":"SUSPENDED"'; then
    pass "subscription $susp_id SUSPENDED by lifecycle run --at $at"
  else
    fail "subscription $susp_id SUSPENDED by lifecycle run --at $at" "$D/lifecycle.out"
  fi

  local names='["cb-a.example.com","cb-b.example.com","cbdns.example.com","*.cbdns.example.com",
    "lg-a.example.com","lg-b.example.com","lg-alpn.example.com","lgw.example.com","*.lgw.example.com",
    "two.example.com"]'
  create_sub "$D/sub-dv.json" "{\"customer\":\"acme-corp\",\"product\":\"sectigo_dv_acme\",\"domainNames\":$names,\"period\":12}"
  create_sub "$D/sub-ov.json" '{"customer":"acme-corp","product":"sectigo_ov_acme","domainNames":["ov.example.com"],"period":12,
    "organization":"Acme Corp B.V.","country":"NL","city":"Amsterdam",
    "approver":{"firstName":"Ann","lastName":"Admin","email":"ann@example.com","voice":"+31.612345678"}}'
  if api GET "/v2/ssl/acme/$(json_field "$D/sub-ov.json" id)" | grep -q '"status":"PENDING_ORGANIZATION_VALIDATION"'; then
    pass "OV subscription is PENDING_ORGANIZATION_VALIDATION"
  else
    fail "OV subscription is PENDING_ORGANIZATION_VALIDATION"
  fi

  DIR_URL=$(json_field "$D/sub-dv.json" directoryUrl)
  local kid hmac dv_id
  kid=$(json_field "$D/sub-dv.json" accountKey)
  hmac=$(json_field "$D/sub-dv.json" hmacKey)
  dv_id=$(json_field "$D/sub-dv.json" id)
  local cbs=(--server "$DIR_URL")
  local cbhttp=(--standalone --http-01-address 127.0.0.1 --http-01-port "$HTTP01_PORT")
  local cbdns=(--manual --preferred-challenges dns --manual-auth-hook "$D/certbot-auth-hook.sh"
    --manual-cleanup-hook "$D/certbot-cleanup-hook.sh")
  export MGMT

  # ---- certbot
  cb register cb "${cbs[@]}" register --agree-tos -m ops@example.com --eab-kid "$kid" --eab-hmac-key "$hmac"
  check "certbot register with EAB" "$D/cb-register.out" grep -q "Account registered" "$D/cb-register.out"

  cb http cb "${cbs[@]}" certonly "${cbhttp[@]}" --cert-name cb-http -d cb-a.example.com -d cb-b.example.com
  rc=$?
  local live=$D/cb/etc/live
  if [ $rc -eq 0 ] && has_sans "$live/cb-http/cert.pem" cb-a.example.com cb-b.example.com; then
    pass "certbot http-01, two names"
    verify_chain certbot-http "$live/cb-http/cert.pem" "$live/cb-http/chain.pem"
  else
    fail "certbot http-01, two names" "$(cblog http)"
  fi

  cb dns cb "${cbs[@]}" certonly "${cbdns[@]}" --cert-name cb-dns -d cbdns.example.com -d '*.cbdns.example.com'
  rc=$?
  if [ $rc -eq 0 ] && has_sans "$live/cb-dns/cert.pem" cbdns.example.com '*.cbdns.example.com'; then
    pass "certbot dns-01 (manual hooks), wildcard + base name"
    verify_chain certbot-dns "$live/cb-dns/cert.pem" "$live/cb-dns/chain.pem"
  else
    fail "certbot dns-01 (manual hooks), wildcard + base name" "$(cblog dns)"
  fi

  local before after
  before=$(serial_of "$live/cb-http/cert.pem")
  cb renew cb renew --force-renewal --no-random-sleep-on-renew --cert-name cb-http
  rc=$?
  after=$(serial_of "$live/cb-http/cert.pem")
  if [ $rc -eq 0 ] && [ -n "$after" ] && [ "$before" != "$after" ]; then
    pass "certbot renew --force-renewal (new serial)"
    verify_chain certbot-renewed "$live/cb-http/cert.pem" "$live/cb-http/chain.pem"
  else
    fail "certbot renew --force-renewal (new serial)" "$(cblog renew)"
  fi

  check "OCSP good before certbot revoke" "" \
    test "$(ocsp_status "$live/cb-dns/cert.pem" "$live/cb-dns/chain.pem")" = good
  cb revoke cb "${cbs[@]}" revoke --cert-name cb-dns --reason superseded --no-delete-after-revoke
  check "certbot revoke" "$(cblog revoke)" grep -q "successfully revoked" "$D/cb-revoke.out"
  check "OCSP revoked after certbot revoke" "" \
    test "$(ocsp_status "$live/cb-dns/cert.pem" "$live/cb-dns/chain.pem")" = revoked

  # ---- lego
  local certs
  lg http lego-http "$kid" "$hmac" --domains lg-a.example.com --domains lg-b.example.com \
    --http --http.port "127.0.0.1:$HTTP01_PORT" run
  rc=$?
  certs=$D/lego-http/certificates
  leaf_of "$certs/lg-a.example.com.crt" "$D/lg-http-leaf.pem"
  if [ $rc -eq 0 ] && has_sans "$D/lg-http-leaf.pem" lg-a.example.com lg-b.example.com; then
    pass "lego http-01, two names"
    verify_chain lego-http "$D/lg-http-leaf.pem" "$certs/lg-a.example.com.issuer.crt"
  else
    fail "lego http-01, two names" "$D/lg-http.out"
  fi

  lg alpn lego-alpn "$kid" "$hmac" --domains lg-alpn.example.com --tls --tls.port "127.0.0.1:$ALPN_PORT" run
  rc=$?
  certs=$D/lego-alpn/certificates
  leaf_of "$certs/lg-alpn.example.com.crt" "$D/lg-alpn-leaf.pem"
  if [ $rc -eq 0 ] && grep -q "TLS-ALPN-01" "$D/lg-alpn.out" && has_sans "$D/lg-alpn-leaf.pem" lg-alpn.example.com; then
    pass "lego tls-alpn-01"
    verify_chain lego-alpn "$D/lg-alpn-leaf.pem" "$certs/lg-alpn.example.com.issuer.crt"
  else
    fail "lego tls-alpn-01" "$D/lg-alpn.out"
  fi

  lg dns lego-dns "$kid" "$hmac" --domains lgw.example.com --domains '*.lgw.example.com' \
    --dns exec --dns.disable-cp --dns.resolvers "127.0.0.1:$DNS_PORT" run
  rc=$?
  certs=$D/lego-dns/certificates
  leaf_of "$certs/lgw.example.com.crt" "$D/lg-dns-leaf.pem"
  if [ $rc -eq 0 ] && has_sans "$D/lg-dns-leaf.pem" lgw.example.com '*.lgw.example.com'; then
    pass "lego dns-01 (exec provider), wildcard + base name"
    verify_chain lego-dns "$D/lg-dns-leaf.pem" "$certs/lgw.example.com.issuer.crt"
  else
    fail "lego dns-01 (exec provider), wildcard + base name" "$D/lg-dns.out"
  fi

  certs=$D/lego-http/certificates
  before=$(serial_of "$certs/lg-a.example.com.crt")
  lg renew lego-http "$kid" "$hmac" --domains lg-a.example.com --domains lg-b.example.com \
    --http --http.port "127.0.0.1:$HTTP01_PORT" renew --days 9999 --no-random-sleep
  rc=$?
  after=$(serial_of "$certs/lg-a.example.com.crt")
  leaf_of "$certs/lg-a.example.com.crt" "$D/lg-renew-leaf.pem"
  if [ $rc -eq 0 ] && [ -n "$after" ] && [ "$before" != "$after" ]; then
    pass "lego renew --days 9999 (new serial)"
    verify_chain lego-renewed "$D/lg-renew-leaf.pem" "$certs/lg-a.example.com.issuer.crt"
  else
    fail "lego renew --days 9999 (new serial)" "$D/lg-renew.out"
  fi

  certs=$D/lego-alpn/certificates
  cp "$certs/lg-alpn.example.com.issuer.crt" "$D/lg-alpn-issuer.pem"
  check "OCSP good before lego revoke" "" test "$(ocsp_status "$D/lg-alpn-leaf.pem" "$D/lg-alpn-issuer.pem")" = good
  lg revoke lego-alpn "$kid" "$hmac" --domains lg-alpn.example.com revoke --reason 4
  check "lego revoke" "$D/lg-revoke.out" grep -q "Certificate was revoked" "$D/lg-revoke.out"
  check "OCSP revoked after lego revoke" "" test "$(ocsp_status "$D/lg-alpn-leaf.pem" "$D/lg-alpn-issuer.pem")" = revoked

  # Two accounts bound by one subscription's EAB, both issue.
  local a acct_a acct_b ok=1
  for a in one two; do
    lg "acct-$a" "lego-acct-$a" "$kid" "$hmac" --domains two.example.com \
      --http --http.port "127.0.0.1:$HTTP01_PORT" run || ok=0
    leaf_of "$D/lego-acct-$a/certificates/two.example.com.crt" "$D/acct-$a-leaf.pem" || ok=0
  done
  acct_a=$(sed -n 's/.*"uri": *"\([^"]*\)".*/\1/p' "$D"/lego-acct-one/accounts/*/*/account.json 2>/dev/null)
  acct_b=$(sed -n 's/.*"uri": *"\([^"]*\)".*/\1/p' "$D"/lego-acct-two/accounts/*/*/account.json 2>/dev/null)
  if [ $ok = 1 ] && [ -n "$acct_a" ] && [ -n "$acct_b" ] && [ "$acct_a" != "$acct_b" ]; then
    pass "two accounts from one EAB both issue ($acct_a, $acct_b)"
    verify_chain acct-one "$D/acct-one-leaf.pem" "$D/lego-acct-one/certificates/two.example.com.issuer.crt"
    verify_chain acct-two "$D/acct-two-leaf.pem" "$D/lego-acct-two/certificates/two.example.com.issuer.crt"
  else
    fail "two accounts from one EAB both issue" "$D/lg-acct-two.out"
  fi
  certhub admin acme-account list --subscription "$dv_id" >"$D/accounts.txt" 2>&1
  if grep -q "^${acct_a##*/}\b" "$D/accounts.txt" && grep -q "^${acct_b##*/}\b" "$D/accounts.txt"; then
    pass "admin acme-account list shows both accounts under subscription $dv_id"
  else
    fail "admin acme-account list shows both accounts under subscription $dv_id" "$D/accounts.txt"
  fi

  if api GET "/v2/ssl/certificates?limit=100" | grep -q '"ACME_SUBSCRIPTION"'; then
    pass "ACME certificates visible in GET /v2/ssl/certificates"
  else
    fail "ACME certificates visible in GET /v2/ssl/certificates"
  fi

  # ---- negatives
  # A name outside the subscription.
  lg outside lego-http "$kid" "$hmac" --domains outside.example.org --http --http.port "127.0.0.1:$HTTP01_PORT" run
  rc=$?
  negative "lego name outside the subscription" "$D/lg-outside.out" "rejectedIdentifier" $rc
  negative "lego name outside the subscription" "$D/lg-outside.out" "outside.example.org is not covered by subscription $dv_id" $rc
  cb outside cb "${cbs[@]}" certonly "${cbhttp[@]}" --cert-name outside -d outside.example.org
  rc=$?
  negative "certbot name outside the subscription" "$(cblog outside)" "rejectedIdentifier" $rc
  negative "certbot name outside the subscription" "$(cblog outside)" "outside.example.org is not covered by subscription $dv_id" $rc

  # SUSPENDED and PENDING_ORGANIZATION_VALIDATION subscriptions.
  local which file id detail dir skid shmac domain
  for which in susp ov; do
    file=$D/sub-$which.json
    id=$(json_field "$file" id)
    dir=$(json_field "$file" directoryUrl)
    skid=$(json_field "$file" accountKey)
    shmac=$(json_field "$file" hmacKey)
    if [ $which = susp ]; then
      domain=susp.example.com
      detail="subscription $id is SUSPENDED: renew"
    else
      domain=ov.example.com
      # The detail names the organisation-validation process the operator sees.
      local process
      process=$(certhub admin validation list 2>/dev/null |
        sed -n "s/.* process=\([0-9]*\) subscription=$id .*/\1/p" | head -n 1)
      detail="subscription $id is PENDING_ORGANIZATION_VALIDATION: complete the organisation validation, process ${process:-?}"
    fi
    DIR_URL=$dir lg "$which" "lego-$which" "$skid" "$shmac" --domains $domain \
      --http --http.port "127.0.0.1:$HTTP01_PORT" run
    rc=$?
    negative "lego $which subscription" "$D/lg-$which.out" "$detail" $rc
    cb "$which" "cb-$which" --server "$dir" certonly "${cbhttp[@]}" --agree-tos -m ops@example.com \
      --eab-kid "$skid" --eab-hmac-key "$shmac" --cert-name "$which" -d $domain
    rc=$?
    negative "certbot $which subscription" "$(cblog "$which")" "$detail" $rc
  done

  # A wrong EAB MAC key.
  local bad
  bad=$(random_hmac)
  lg badmac lego-badmac "$kid" "$bad" --domains lg-a.example.com --http --http.port "127.0.0.1:$HTTP01_PORT" run
  rc=$?
  negative "lego wrong EAB HMAC key" "$D/lg-badmac.out" "external account binding MAC is invalid" $rc
  cb badmac cb-badmac "${cbs[@]}" register --agree-tos -m ops@example.com --eab-kid "$kid" --eab-hmac-key "$bad"
  rc=$?
  negative "certbot wrong EAB HMAC key" "$(cblog badmac)" "external account binding MAC is invalid" $rc

  if grep -q "panicked" "$D/serve.log"; then fail "no panic in the server log" "$D/serve.log"; else pass "no panic in the server log"; fi
  scan_secrets
  echo "== [$BACKEND] done in $((SECONDS - t0)) s"
}

# One backend in a subshell (so a fatal error ends only that backend); its
# counts come back through a file, its processes die with it.
run_backend_isolated() {
  local counts=$WORK/$1.counts p f
  (
    PASSED=0 FAILED=0 PIDS=()
    trap 'kill_started; echo "$PASSED $FAILED" >"$counts"' EXIT
    trap 'exit 130' INT TERM
    run_backend "$@"
  )
  if read -r p f <"$counts" 2>/dev/null; then
    PASSED=$((PASSED + p)) FAILED=$((FAILED + f))
  else
    FAILED=$((FAILED + 1))
    echo "FAIL [$1] backend run ended without counts"
  fi
}

# ---- main
for tool in certbot lego openssl curl python3; do
  command -v $tool >/dev/null || { echo "FAIL missing tool: $tool (run scripts/install-test-deps.sh)"; echo "0 passed, 1 failed"; exit 1; }
done
for b in certhub certhub-testdns; do
  [ -x "$BIN/$b" ] || { echo "FAIL missing $BIN/$b (cargo build --workspace)"; echo "0 passed, 1 failed"; exit 1; }
done

for backend in ${INTEROP_BACKENDS:-sqlite postgres}; do
  case $backend in
    sqlite)
      run_backend_isolated sqlite ""
      ;;
    postgres)
      BACKEND=postgres
      if ! command -v psql >/dev/null || ! psql -q "$PG_ADMIN_URL" -c 'SELECT 1' >/dev/null 2>&1; then
        echo "SKIPPED: PostgreSQL (no psql or no server at $PG_ADMIN_URL)"
        continue
      fi
      PG_DB="certhub_interop_$$_$RANDOM"
      psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE \"$PG_DB\"" >/dev/null || {
        echo "SKIPPED: PostgreSQL (CREATE DATABASE failed)"
        PG_DB=""
        continue
      }
      run_backend_isolated postgres "${PG_ADMIN_URL%/*}/$PG_DB"
      drop_pg_db
      ;;
  esac
done
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
