#!/usr/bin/env bash
# PKI conformance of certhub's embedded CA (SQLite), with pkilint and openssl.
#
# Starts certhub-testdns and `certhub serve --pki-url http://pki.example.com`
# (pkilint flags internal names such as localhost in PKI URLs; everything is
# still fetched from 127.0.0.1), issues a DV certificate and an OV certificate
# with lego through ACME subscriptions (the OV organisation approved with
# `certhub admin validation approve`), fetches the root and the DV / OV
# intermediates, every CRL and OCSP responses, and lints them:
#   lint_cabf_serverauth_cert: DV-FINAL-CERTIFICATE, OV-FINAL-CERTIFICATE,
#     ROOT-CA, INTERNAL-UNCONSTRAINED-TLS-CA (DV and OV intermediates, same
#     operator as the root), OCSP-RESPONDER (delegated responders);
#     the "server" intermediate (certhub's own listener, intentionally without
#     CA/B policy) only with lint_pkix_cert;
#   lint_crl -p BR: CRL for the intermediates, ARL for the root, before and
#     after revocations; lint_ocsp_response: good and revoked responses.
# Any finding of severity WARNING or above fails. Then revocation: OCSP good
# -> lego revoke (DV) / REST DELETE (OV) -> OCSP revoked, and the CRL lists
# the serial with its reason.
#
# Prints PASS/FAIL per check and ends with "N passed, M failed".
set -uo pipefail
export NO_COLOR=1   # plain server logs

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
BIN=$TARGET/debug
PKI_HOST=pki.example.com
export PATH="$PATH:$ROOT/.venv-test/bin"

PASSED=0
FAILED=0
PIDS=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/certhub-interop-pki.XXXXXX")
D=$WORK

summary_done=0
finish() {
  local pid i
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || continue
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  [ $summary_done = 1 ] || echo "$PASSED passed, $FAILED failed"
  if [ "${KEEP_TMP:-0}" = 1 ] || [ "$FAILED" -gt 0 ]; then
    echo "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap finish EXIT
trap 'exit 130' INT TERM

pass() { PASSED=$((PASSED + 1)); echo "PASS $1"; }
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL $1"
  if [ -n "${2:-}" ] && [ -f "$2" ]; then
    echo "---- last lines of $2"
    tail -n 20 "$2" | sed 's/^/    /'
    echo "----"
  fi
}
die() { fail "fatal: $*"; exit 1; }

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

certhub() { "$BIN/certhub" --data-dir "$D/data" --config "$D/certhub.toml" "$@"; }

api() { # api METHOD PATH [JSON]
  curl -sS --cacert "$D/root.pem" -X "$1" -H "Authorization: ApiKey $API_KEY" \
    -H 'Content-Type: application/json' ${3:+-d "$3"} "https://localhost:$HTTPS_PORT$2"
}

# pki_get PATH FILE: fetch a PKI object over plain HTTP from the HTTPS port.
pki_get() {
  if curl -sf -o "$2" "http://127.0.0.1:$HTTPS_PORT$1" && [ -s "$2" ]; then
    pass "GET $1"
  else
    fail "GET $1"
  fi
}

# lint NAME FILE COMMAND...: no finding of severity WARNING or above.
lint() {
  local name=$1 file=$2 out=$D/lint-$1.txt
  shift 2
  if [ ! -s "$file" ]; then
    fail "pkilint $name: nothing to lint ($file)"
    return
  fi
  "$@" -s WARNING "$file" >"$out" 2>&1
  local rc=$?
  if [ $rc -eq 0 ] && ! grep -qE '\((WARNING|ERROR|FATAL)\)|Traceback' "$out"; then
    pass "pkilint $name: no warning, no error"
  else
    fail "pkilint $name (rc $rc)" "$out"
  fi
}

# ocsp NAME LEAF ISSUER_PEM ISSUER_ID: prints the status; response in ocsp-NAME.der.
ocsp() {
  openssl ocsp -issuer "$3" -cert "$2" -url "http://127.0.0.1:$HTTPS_PORT/ocsp/$4" \
    -CAfile "$D/root.pem" -respout "$D/ocsp-$1.der" >"$D/ocsp-$1.txt" 2>&1
  awk -F': ' -v c="$2" '$1 == c { print $2; exit }' "$D/ocsp-$1.txt"
}

# lego_issue NAME SUBFILE DOMAIN: lego http-01 through the subscription in SUBFILE.
lego_issue() {
  LEGO_CA_CERTIFICATES=$D/root.pem timeout 180 lego --accept-tos --email ops@example.com \
    --server "$(json_field "$2" directoryUrl)" --eab --kid "$(json_field "$2" accountKey)" \
    --hmac "$(json_field "$2" hmacKey)" --path "$D/lego-${1%-revoke}" --domains "$3" \
    --http --http.port "127.0.0.1:$HTTP01_PORT" "${@:4}" >"$D/lego-$1.out" 2>&1
}

# ---- prerequisites
for tool in lego openssl curl python3 lint_cabf_serverauth_cert lint_crl lint_ocsp_response lint_pkix_cert; do
  command -v $tool >/dev/null || die "missing tool $tool (run scripts/install-test-deps.sh)"
done
for b in certhub certhub-testdns; do
  [ -x "$BIN/$b" ] || die "missing $BIN/$b (cargo build --workspace)"
done

# ---- server
T0=$SECONDS
read -r HTTPS_PORT DNS_PORT MGMT_PORT HTTP01_PORT <<<"$(free_ports 4)"
cat >"$D/certhub.toml" <<EOF
[validation]
allow_loopback = true
resolver = "127.0.0.1:$DNS_PORT"
http01_port = $HTTP01_PORT
EOF
"$BIN/certhub-testdns" --dns "127.0.0.1:$DNS_PORT" --mgmt "127.0.0.1:$MGMT_PORT" \
  --default-a 127.0.0.1 >"$D/testdns.log" 2>&1 &
PIDS+=($!)
# The binary itself, not the certhub() wrapper: $! must be the server's pid.
"$BIN/certhub" --data-dir "$D/data" --config "$D/certhub.toml" serve --listen "127.0.0.1:$HTTPS_PORT" \
  --public-url "https://localhost:$HTTPS_PORT" --pki-url "http://$PKI_HOST" >"$D/serve.log" 2>&1 &
PIDS+=($!)
up=0
for _ in $(seq 1 150); do
  curl -sfk "https://127.0.0.1:$HTTPS_PORT/healthz" >/dev/null 2>&1 && { up=1; break; }
  sleep 0.2
done
[ $up = 1 ] || { tail -n 20 "$D/serve.log"; die "server did not come up"; }
certhub ca bundle >"$D/root.pem" || die "certhub ca bundle"
certhub admin customer create acme-corp >/dev/null || die "customer create"
API_KEY=$(certhub admin apikey create acme-corp) || die "apikey create"
certhub admin credit add acme-corp 1000000 >/dev/null || die "credit add"
pass "server up (https 127.0.0.1:$HTTPS_PORT, pki-url http://$PKI_HOST)"

# ---- DV and OV certificates through ACME subscriptions
api POST /v2/ssl/acme '{"customer":"acme-corp","product":"sectigo_dv_acme","domainNames":["dv.example.com"],"period":12}' >"$D/sub-dv.json"
api POST /v2/ssl/acme '{"customer":"acme-corp","product":"sectigo_ov_acme","domainNames":["ov.example.com"],"period":12,
  "organization":"Acme Corp B.V.","country":"NL","city":"Amsterdam",
  "approver":{"firstName":"Ann","lastName":"Admin","email":"ann@example.com","voice":"+31.612345678"}}' >"$D/sub-ov.json"
ov_sub=$(json_field "$D/sub-ov.json" id) || die "OV subscription not created: $(cat "$D/sub-ov.json")"
json_field "$D/sub-dv.json" id >/dev/null || die "DV subscription not created: $(cat "$D/sub-dv.json")"

certhub admin validation list >"$D/validations.txt" 2>&1
val_id=$(awk -v s="subscription=$ov_sub" '$0 ~ s && /status=PENDING/ { print $1; exit }' "$D/validations.txt")
if [ -n "$val_id" ] && certhub admin validation approve "$val_id" >"$D/approve.txt" 2>&1 &&
  api GET "/v2/ssl/acme/$ov_sub" | grep -q '"status":"ACTIVE"'; then
  pass "organisation validation $val_id approved, OV subscription ACTIVE"
else
  fail "organisation validation approved" "$D/validations.txt"
fi

for kind in dv ov; do
  if lego_issue "$kind" "$D/sub-$kind.json" "$kind.example.com" run &&
    openssl x509 -in "$D/lego-$kind/certificates/$kind.example.com.crt" -out "$D/$kind-leaf.pem"; then
    pass "lego issued the ${kind^^} certificate"
  else
    fail "lego issued the ${kind^^} certificate" "$D/lego-$kind.out"
  fi
done

# ---- issuers, CRLs
for i in root dv ov server; do
  pki_get "/issuer/$i.cer" "$D/$i.cer"
  openssl x509 -inform DER -in "$D/$i.cer" -out "$D/$i.pem" 2>/dev/null
  pki_get "/crl/$i.crl" "$D/$i.crl"
done
if [ "$(openssl x509 -in "$D/root.pem" -noout -fingerprint -sha256 2>/dev/null)" = \
    "$(certhub ca bundle | openssl x509 -noout -fingerprint -sha256)" ]; then
  pass "/issuer/root.cer is the root of certhub ca bundle"
else
  fail "/issuer/root.cer is the root of certhub ca bundle"
fi

for kind in dv ov; do
  if openssl verify -CAfile "$D/root.pem" -untrusted "$D/$kind.pem" "$D/$kind-leaf.pem" >"$D/verify-$kind.txt" 2>&1; then
    pass "openssl verify ${kind^^} leaf with /issuer/$kind.cer"
  else
    fail "openssl verify ${kind^^} leaf with /issuer/$kind.cer" "$D/verify-$kind.txt"
  fi
  # Every PKI URL in the leaf points at the pki-url host, over http.
  urls=$(openssl x509 -in "$D/$kind-leaf.pem" -noout -text | grep -o 'URI:[^ ]*\|http://[^ ]*' | sort -u)
  if [ -n "$urls" ] && ! grep -v "http://$PKI_HOST/" <<<"$(sed 's/^URI://' <<<"$urls")" | grep -q .; then
    pass "${kind^^} leaf PKI URLs all under http://$PKI_HOST/"
  else
    fail "${kind^^} leaf PKI URLs all under http://$PKI_HOST/ (got: $(tr '\n' ' ' <<<"$urls"))"
  fi
done
if openssl x509 -in "$D/ov-leaf.pem" -noout -subject | grep -q "O = Acme Corp B.V."; then
  pass "OV leaf subject carries the approved organisation"
else
  fail "OV leaf subject carries the approved organisation"
fi

# ---- pkilint on certificates
lint dv-leaf "$D/dv-leaf.pem" lint_cabf_serverauth_cert lint -t DV-FINAL-CERTIFICATE
lint ov-leaf "$D/ov-leaf.pem" lint_cabf_serverauth_cert lint -t OV-FINAL-CERTIFICATE
lint root "$D/root.pem" lint_cabf_serverauth_cert lint -t ROOT-CA
lint dv-intermediate "$D/dv.pem" lint_cabf_serverauth_cert lint -t INTERNAL-UNCONSTRAINED-TLS-CA
lint ov-intermediate "$D/ov.pem" lint_cabf_serverauth_cert lint -t INTERNAL-UNCONSTRAINED-TLS-CA
lint server-intermediate-pkix "$D/server.pem" lint_pkix_cert lint

# ---- OCSP good, lint responses and responder certificates
for kind in dv ov; do
  status=$(ocsp "$kind-good" "$D/$kind-leaf.pem" "$D/$kind.pem" "$kind")
  if [ "$status" = good ] && grep -q "Response verify OK" "$D/ocsp-$kind-good.txt"; then
    pass "OCSP ${kind^^} leaf: good (response verified against the root)"
  else
    fail "OCSP ${kind^^} leaf: good, got '$status'" "$D/ocsp-$kind-good.txt"
  fi
  lint "ocsp-$kind-good" "$D/ocsp-$kind-good.der" lint_ocsp_response lint
  openssl ocsp -respin "$D/ocsp-$kind-good.der" -resp_text -noverify 2>/dev/null |
    sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' >"$D/responder-$kind.pem"
  lint "ocsp-responder-$kind" "$D/responder-$kind.pem" lint_cabf_serverauth_cert lint -t OCSP-RESPONDER
done

# ---- CRLs before revocation
lint crl-root "$D/root.crl" lint_crl lint -t ARL -p BR
for i in dv ov server; do lint "crl-$i" "$D/$i.crl" lint_crl lint -t CRL -p BR; done

# ---- revocation: DV by lego (ACME revokeCert, keyCompromise), OV by REST DELETE (affiliationChanged)
if lego_issue dv-revoke "$D/sub-dv.json" dv.example.com revoke --keep --reason 1; then
  pass "lego revoke --reason 1 (DV)"
else
  fail "lego revoke --reason 1 (DV)" "$D/lego-dv-revoke.out"
fi
ov_cert=$(api GET "/v2/ssl/certificates?domainName=ov.example.com&status=ACTIVE" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["entities"][0]["id"])' 2>/dev/null)
code=$(curl -sS -o "$D/rest-revoke.json" -w '%{http_code}' --cacert "$D/root.pem" -X DELETE \
  -H "Authorization: ApiKey $API_KEY" -H 'Content-Type: application/json' \
  -d '{"reason":"AFFILIATION_CHANGED"}' "https://localhost:$HTTPS_PORT/v2/ssl/certificates/$ov_cert")
if [ "$code" = 202 ] || [ "$code" = 200 ]; then
  pass "REST DELETE /v2/ssl/certificates/$ov_cert (OV, AFFILIATION_CHANGED) -> $code"
else
  fail "REST DELETE /v2/ssl/certificates/$ov_cert -> $code" "$D/rest-revoke.json"
fi

declare -A REASON=([dv]="Key Compromise" [ov]="Affiliation Changed")
for kind in dv ov; do
  status=$(ocsp "$kind-revoked" "$D/$kind-leaf.pem" "$D/$kind.pem" "$kind")
  if [ "$status" = revoked ] && grep -q "Reason: .*" "$D/ocsp-$kind-revoked.txt"; then
    pass "OCSP ${kind^^} leaf: revoked ($(sed -n 's/^\s*Reason: //p' "$D/ocsp-$kind-revoked.txt"))"
  else
    fail "OCSP ${kind^^} leaf: revoked, got '$status'" "$D/ocsp-$kind-revoked.txt"
  fi
  lint "ocsp-$kind-revoked" "$D/ocsp-$kind-revoked.der" lint_ocsp_response lint

  pki_get "/crl/$kind.crl" "$D/$kind-after.crl"
  serial=$(openssl x509 -in "$D/$kind-leaf.pem" -noout -serial | cut -d= -f2)
  openssl crl -inform DER -in "$D/$kind-after.crl" -noout -text >"$D/$kind-after-crl.txt" 2>&1
  # The entry of that serial, up to the next entry or the signature.
  entry=$(awk -v s="Serial Number: $serial" 'index($0, s) { on = 1; print; next }
    on && /Serial Number:|Signature Algorithm:/ { exit } on { print }' "$D/$kind-after-crl.txt")
  if grep -q "${REASON[$kind]}" <<<"$entry"; then
    pass "CRL ${kind^^} lists serial $serial with reason ${REASON[$kind]}"
  else
    fail "CRL ${kind^^} lists serial $serial with reason ${REASON[$kind]}" "$D/$kind-after-crl.txt"
  fi
  lint "crl-$kind-after-revocation" "$D/$kind-after.crl" lint_crl lint -t CRL -p BR
  n0=$(openssl crl -inform DER -in "$D/$kind.crl" -noout -crlnumber 2>/dev/null | cut -d= -f2)
  n1=$(openssl crl -inform DER -in "$D/$kind-after.crl" -noout -crlnumber 2>/dev/null | cut -d= -f2)
  if [ -n "$n0" ] && [ -n "$n1" ] && python3 -c "import sys; sys.exit(0 if int('$n1',16) > int('$n0',16) else 1)"; then
    pass "CRL ${kind^^} number increased ($n0 -> $n1)"
  else
    fail "CRL ${kind^^} number increased ($n0 -> $n1)"
  fi
done

if grep -q "panicked" "$D/serve.log"; then fail "no panic in the server log" "$D/serve.log"; else pass "no panic in the server log"; fi
echo "== done in $((SECONDS - T0)) s"
summary_done=1
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
