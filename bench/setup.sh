#!/usr/bin/env bash
# Sets up what `npm run bench` compares Strongroom with, on Debian (or Ubuntu), and checks it:
# - SoftHSM v2 (softhsm2), under node-webcrypto-p11 in the peers table and behind p11-kit in the
#   PKCS #11 table; p11-kit (its server and client module) and opensc's pkcs11-tool for the latter;
# - Chromium, for the relay table's page;
# - pkcs11js, node-webcrypto-p11's binding, which npm builds from source with the machine's
#   compiler (g++, make and python3 for node-gyp): built again here if it is missing or does not
#   load.
# What is there already is left alone. apt-get runs as root, or through sudo when there is one.
# It ends by making a key pair with node-webcrypto-p11 on a new SoftHSM token and signing with it
# (bench/peers.ts --check), and fails, saying why, when that does not work.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -e /usr/lib/softhsm/libsofthsm2.so ] || missing+=(softhsm2)
[ -x /usr/bin/p11-kit ] || missing+=(p11-kit)
[ -e /usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so ] || [ -e /usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so ] || missing+=(p11-kit-modules)
command -v pkcs11-tool >/dev/null 2>&1 || missing+=(opensc)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v python3 >/dev/null 2>&1 || missing+=(python3)

if [ ${#missing[@]} -gt 0 ]; then
  echo "bench setup: installing ${missing[*]} from Debian" >&2
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "bench setup: ${missing[*]} missing, and this is not root and has no sudo: install them, then run this again" >&2; exit 1; }
    as_root=(sudo)
  fi
  # env, not an assignment before the command: sudo would drop DEBIAN_FRONTEND from the environment.
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "bench setup: SoftHSM, p11-kit, opensc, Chromium and a compiler are here" >&2
fi

[ -d node_modules ] || npm ci
if ! node -e "require('pkcs11js')" >/dev/null 2>&1; then
  echo "bench setup: pkcs11js does not load; building it with this machine's compiler" >&2
  npm rebuild pkcs11js
fi

node --import tsx bench/peers.ts --check
