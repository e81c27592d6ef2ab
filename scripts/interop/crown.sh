#!/usr/bin/env bash
# Interop check of `razar handshake` against a Crown written with Python's `websockets`:
# ws:// first, then wss:// with a throwaway CA (RAZAR_CROWN_CA). Exits non-zero with a message
# on the first failure. Env: RAZAR_BIN (default target/debug/razar); CROWN_INTEROP_KEEP=1 keeps
# the temporary directory (certificates, roots, outputs) for inspection.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
RAZAR_BIN=${RAZAR_BIN:-$repo/target/debug/razar}
server_py="$here/crown_server.py"

fail() {
    echo "crown interop: FAIL: $*" >&2
    exit 1
}
step() { echo "crown interop: $*"; }

[ -x "$RAZAR_BIN" ] || fail "no razar binary at $RAZAR_BIN (run cargo build, or set RAZAR_BIN)"

if ! python3 -c 'import websockets' 2>/dev/null; then
    step "installing the python websockets library"
    timeout 300 python3 -m pip install --quiet websockets || fail "pip install websockets failed"
    python3 -c 'import websockets' 2>/dev/null || fail "websockets still not importable after pip install"
fi
if ! command -v openssl >/dev/null; then
    [ "$(id -u)" = 0 ] || fail "openssl is missing; install it (apt-get install -y openssl)"
    step "installing openssl"
    timeout 300 apt-get install -y openssl >/dev/null || fail "apt-get install openssl failed"
fi

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    [ -n "${CROWN_INTEROP_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

token="interop-$$-$RANDOM$RANDOM"

step "generating a throwaway CA and a server certificate for 127.0.0.1/localhost"
(
    cd "$work"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj "/CN=razar interop CA" \
        -keyout ca.key -out ca.pem \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" -keyout server.key -out server.csr
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext
    openssl x509 -req -sha256 -days 2 -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -extfile server.ext -out server.pem
) >"$work/openssl.log" 2>&1 || fail "openssl could not make the certificates: $(cat "$work/openssl.log")"

# start_server NAME CONNECTIONS [extra args]: starts the Crown, sets server_pid and port.
start_server() {
    local name=$1 connections=$2
    shift 2
    # Created here, not by the background job's redirection, so the port poll below never
    # reads a file that does not exist yet.
    : >"$work/$name.out"
    python3 "$server_py" --port 0 --connections "$connections" --token "$token" \
        --capabilities "GLM-4.1V,interop" --record "$work/$name.record" --max-seconds 60 "$@" \
        >"$work/$name.out" 2>"$work/$name.err" &
    server_pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/^PORT \([0-9][0-9]*\)$/\1/p' "$work/$name.out")
        [ -n "$port" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || fail "$name server died: $(cat "$work/$name.err")"
        sleep 0.1
    done
    fail "$name server did not report its port within 10 s: $(cat "$work/$name.err")"
}

stop_server() {
    for _ in $(seq 100); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# handshake NAME URL [env assignments...]: runs razar in a fresh root; sets rc, root.
handshake() {
    local name=$1 url=$2
    shift 2
    root="$work/root-$name"
    mkdir -p "$root"
    set +e
    env "$@" CROWN_TOKEN="$token" timeout 60 "$RAZAR_BIN" --root "$root" handshake --url "$url" \
        >"$work/$name.stdout" 2>"$work/$name.stderr"
    rc=$?
    set -e
}

# expect_ack NAME: exit 0, ack and capabilities printed, response archived, token nowhere.
expect_ack() {
    local name=$1
    [ "$rc" = 0 ] || fail "$name: razar exited $rc: $(cat "$work/$name.stderr")"
    grep -qx "acknowledgement: CROWN-ACK" "$work/$name.stdout" || fail "$name: no acknowledgement in: $(cat "$work/$name.stdout")"
    grep -qx "capabilities: GLM-4.1V, interop" "$work/$name.stdout" || fail "$name: capabilities missing in: $(cat "$work/$name.stdout")"
    local responses=("$root"/logs/mission_briefs/*_response.json)
    [ -f "${responses[0]}" ] || fail "$name: no archived response under $root/logs/mission_briefs"
    python3 - "${responses[0]}" <<'PY' || fail "$name: archived response is wrong: $(cat "${responses[0]}")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ack"] == "CROWN-ACK" and r["capabilities"] == ["GLM-4.1V", "interop"], r
PY
    if grep -rqF "$token" "$root" "$work/$name.stdout" "$work/$name.stderr"; then
        fail "$name: the bearer token was written somewhere under the root or to razar's output"
    fi
}

step "ws:// handshake"
start_server ws 1
handshake ws "ws://127.0.0.1:$port/crown"
expect_ack ws
stop_server
grep -q '"auth_ok": true' "$work/ws.record" || fail "ws: the server did not see Authorization: Bearer <token>"
grep -q '"priority_map"' "$work/ws.record" || fail "ws: the server did not receive the brief"

step "wss:// without the CA is refused as a tls failure"
start_server wss 1 --certfile "$work/server.pem" --keyfile "$work/server.key"
handshake wss-noca "wss://localhost:$port/crown"
[ "$rc" = 3 ] || fail "wss without RAZAR_CROWN_CA: expected exit 3, got $rc: $(cat "$work/wss-noca.stderr")"
grep -q "tls with crown" "$work/wss-noca.stderr" || fail "wss without CA: no tls message: $(cat "$work/wss-noca.stderr")"

step "wss:// handshake with RAZAR_CROWN_CA"
handshake wss "wss://localhost:$port/crown" RAZAR_CROWN_CA="$work/ca.pem"
expect_ack wss
stop_server
grep -q '"auth_ok": true' "$work/wss.record" || fail "wss: the server did not see Authorization: Bearer <token>"

step "ok (ws:// and wss://)"
