#!/usr/bin/env bash
# A runbook in the style teams write for AWS's cloudhsm-cli, using only cloudhsm-cli, jq and
# openssl (and coreutils). It runs unchanged against Strongroom, whose package installs the
# command under that name too:
#
#   export CLOUDHSM_ROLE=crypto-user CLOUDHSM_PIN=app:strongroom-app
#   export STRONGROOM_CLUSTER=strongroom-data/cluster.json   # where `npm start` wrote it
#   PATH="$PWD/node_modules/.bin:$PATH" samples/cloudhsm-cli-runbook.sh
#
# It lists keys page by page, selects keys by the key reference as printed, signs with ECDSA and
# checks the r‖s signature with openssl after converting it to DER, wraps and unwraps with AES-GCM
# using the printed IV, and writes a reference PEM that openssl reads as the key's public half.
set -euo pipefail
cli=${CLOUDHSM_CLI:-cloudhsm-cli}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
label="runbook-$$"
fail() { echo "runbook: $*" >&2; exit 1; }
ref_of() { "$cli" key list --filter "attr.label=$1" | jq -r '.data.matched_keys[0]["key-reference"]'; }

# Keys: an EC signing pair, an AES wrapping key and a payload key.
"$cli" key generate-asymmetric-pair ec --curve prime256v1 --public-label "$label-pub" --private-label "$label-priv" \
  --private-attributes sign=true --public-attributes verify=true >/dev/null
"$cli" key generate-symmetric aes --label "$label-wrap" --key-length-bytes 32 --attributes wrap=true unwrap=true >/dev/null
"$cli" key generate-symmetric aes --label "$label-payload" --key-length-bytes 16 >/dev/null

# Every key, two per page: the pages add up to total_key_count.
token="" seen=0 total=0
while :; do
  page=$("$cli" key list --max-items 2 ${token:+--starting-token "$token"})
  seen=$((seen + $(jq '.data.matched_keys | length' <<<"$page")))
  total=$(jq '.data.total_key_count' <<<"$page")
  token=$(jq -r '.data.next_token // empty' <<<"$page")
  [ -n "$token" ] || break
done
[ "$seen" -eq "$total" ] || fail "the pages held $seen keys, total_key_count says $total"

# Keys by the reference as printed (0x and 16 hex digits).
priv=$(ref_of "$label-priv") pub=$(ref_of "$label-pub") wrap=$(ref_of "$label-wrap") payload=$(ref_of "$label-payload")
[ "$("$cli" key list --filter "key-reference=$priv" --verbose | jq -r '.data.matched_keys[0].attributes.label')" = "$label-priv" ] ||
  fail "key-reference=$priv did not select $label-priv"

# ECDSA: r‖s from the HSM, DER for openssl, checked against the public key as PEM.
printf 'pay 100 to bob' >"$work/msg"
"$cli" crypto sign ecdsa --key-filter "key-reference=$priv" --hash-function sha256 --data-path "$work/msg" |
  jq -r .data.signature | openssl base64 -d -A >"$work/sig.raw"
[ "$(wc -c <"$work/sig.raw")" -eq 64 ] || fail "an ECDSA P-256 signature is r‖s, 64 bytes"
hex=$(od -An -tx1 -v "$work/sig.raw" | tr -d ' \n')
printf 'asn1=SEQUENCE:sig\n[sig]\nr=INTEGER:0x%s\ns=INTEGER:0x%s\n' "${hex:0:64}" "${hex:64:64}" >"$work/sig.cnf"
openssl asn1parse -genconf "$work/sig.cnf" -out "$work/sig.der" -noout
"$cli" key generate-file --encoding pem --path "$work/pub.pem" --filter "key-reference=$pub" >/dev/null
openssl dgst -sha256 -verify "$work/pub.pem" -signature "$work/sig.der" "$work/msg" | grep -qx 'Verified OK' || fail "openssl did not verify the signature"

# AES-GCM: the printed IV (hex) and the AAD in hex go back to unwrap.
wrapped=$("$cli" key wrap aes-gcm --payload-filter "key-reference=$payload" --wrapping-filter "key-reference=$wrap" --tag-length-bits 128 --aad 0x10)
iv=$(jq -r .data.iv <<<"$wrapped")
[[ "$iv" =~ ^0x[0-9a-f]{24}$ ]] || fail "iv is not 12 bytes of hex: $iv"
back=$("$cli" key unwrap aes-gcm --filter "key-reference=$wrap" --key-type-class aes --label "$label-back" --session \
  --tag-length-bits 128 --aad 0x10 --iv "$iv" --data "$(jq -r .data.wrapped_key_data <<<"$wrapped")")
[ "$(jq -r '.data.key.attributes["check-value"]' <<<"$back")" = "$("$cli" key list --filter "key-reference=$payload" --verbose | jq -r '.data.matched_keys[0].attributes["check-value"]')" ] ||
  fail "the unwrapped key is not the payload key"

# A reference PEM for the private key: openssl reads it, and its public half is the key's.
"$cli" key generate-file --encoding reference-pem --path "$work/ref.pem" --filter "key-reference=$priv" | jq -e '.data.message == "Successfully generated key file"' >/dev/null
openssl ec -in "$work/ref.pem" -pubout -out "$work/ref-pub.pem" 2>/dev/null
cmp -s "$work/ref-pub.pem" "$work/pub.pem" || fail "the reference PEM's public key is not the key's"

for ref in "$priv" "$pub" "$wrap" "$payload"; do
  "$cli" key delete --filter "key-reference=$ref" | jq -e '.data.message == "Key deleted successfully"' >/dev/null
done
echo "runbook: ok ($total keys listed, signature verified by openssl, AES-GCM round trip, reference PEM)"
