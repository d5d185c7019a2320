#!/usr/bin/env bash
# make demo-ha: two elevated nodes on one PostgreSQL database, on this machine. alice asks
# through node A, carol approves through the link her mail carries, served by node B,
# alice fetches her credentials from node A and opens an SSM session; then node A is
# killed (SIGKILL) and node B finishes alone: it ends the grant to the second its window
# ends, terminates the session, and the audit chain both nodes wrote verifies with both
# nodes' keys. A throwaway PostgreSQL (tests/integration/pg.py), the project's AWS
# emulator and a MailDev inbox; everything is removed at the end. DEMO_KEEP=1 stops before
# node A is killed and leaves everything running.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WINDOW=${DEMO_WINDOW:-30s}
T=$(mktemp -d /tmp/elevate-demo-ha.XXXXXX)
PIDS=()
NODE_PID=()
. scripts/demo-lib.sh
cleanup() {
  for p in "${NODE_PID[@]}" "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
if [ -z "${DEMO_KEEP:-}" ]; then trap cleanup EXIT; fi
waitfile() { for _ in $(seq 600); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; return 1; }

step "Starting PostgreSQL, the AWS emulator and a MailDev inbox (state in $T)"
# pg.py: initdb into a new directory in /tmp, a server on a free port (run as an
# unprivileged user when we are root), a role `elevate` that owns the database; stopped
# and removed when this helper gets SIGTERM, and killed with it if it dies.
python3 - "$T/pg.env" >"$T/pg.log" 2>&1 <<'PY' & PIDS+=($!)
import os, signal, sys, time
sys.path.insert(0, 'tests/integration')
import pg
server = pg.PostgreSQL().start()
def stop(*_):
    server.stop()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
with open(sys.argv[1] + '.tmp', 'w') as f:
    f.write('PG_URL=%s\nPG_BIN=%s\nPG_DIR=%s\n' % (server.url, server.bindir, server.dir))
os.rename(sys.argv[1] + '.tmp', sys.argv[1])
while True:
    time.sleep(3600)
PY
waitfile "$T/pg.env" || { cat "$T/pg.log" >&2; exit 1; }
PG_URL=$(sed -n 's/^PG_URL=//p' "$T/pg.env")
PG_BIN=$(sed -n 's/^PG_BIN=//p' "$T/pg.env")
say "PostgreSQL: ${PG_URL%%\?*} (password in a passfile, never in the URL)"
psql() { env -u PGHOST -u PGPORT -u PGUSER -u PGPASSWORD LC_ALL=C "$PG_BIN/psql" -X -q -d "$PG_URL" "$@"; }

demo_emulator "$T"

MAILDEV_WEB=$(port)
MAILDEV_SMTP=$(port)
tests/browser/node_modules/.bin/maildev --ip 127.0.0.1 --web "$MAILDEV_WEB" --smtp "$MAILDEV_SMTP" \
  --silent >"$T/maildev.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$MAILDEV_WEB/email" >/dev/null && break; sleep 0.1; done
say "MailDev inbox: http://127.0.0.1:$MAILDEV_WEB"

step "Two nodes of one deployment: one database, one key set, each its own audit key"
PORT_A=$(port)
PORT_B=$(port)
URL_A="http://127.0.0.1:$PORT_A"
URL_B="http://127.0.0.1:$PORT_B"
export HOME="$T/home"; mkdir -p "$HOME"
demo_users "$T" "$URL_A"
run bin/elevated keygen "$T/keyset"
# Both nodes name one public_url: in production the load balancer's. There is none here,
# so the links point at node B, and the demo opens them there.
for n in a b; do
  N=$(printf '%s' "$n" | tr a-z A-Z)
  eval "P=\$PORT_$N"
  install -d -m 700 "$T/$n/state"
  install -m 600 "$T/keyset/token.key" "$T/keyset/secret.key" "$T/$n/state/"
  cat >"$T/$n/elevated.json" <<JSON
{
  "node": "node-$n",
  "listen": "127.0.0.1:$P", "public_url": "$URL_B",
  "state_dir": "$T/$n/state", "policies": "$T/policies", "templates": "$ROOT/templates",
  "store": {"url": "$PG_URL"},
  "smtp": {"url": "smtp://127.0.0.1:$MAILDEV_SMTP", "from": "elevate@example.com"},
  "aws": {"region": "ap-northeast-1", "endpoint": "$EMU"},
  "audit": {"file": "$T/$n/audit.jsonl"},
  "auditors": "group:sre-leads", "admins": "group:sre-leads"
}
JSON
done
say "both nodes hold the same token.key and secret.key (digests):"
sha256sum "$T/a/state/token.key" "$T/b/state/token.key" "$T/a/state/secret.key" \
  "$T/b/state/secret.key" | sed "s|$T/||; s/^/     /"
run bin/elevated check --config "$T/a/elevated.json"
start_node() {
  AWS_ACCESS_KEY_ID=AKIDBROKER0000000001 AWS_SECRET_ACCESS_KEY=broker-secret-key-for-tests-only \
  AWS_EC2_METADATA_DISABLED=true bin/elevated --config "$T/$1/elevated.json" \
    >"$T/$1/elevated.log" 2>&1 &
  NODE_PID+=($!)
  for _ in $(seq 200); do curl -sf "$2/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "node-$1 did not come up: see $T/$1/elevated.log" >&2; tail -5 "$T/$1/elevated.log" >&2
  return 1
}
start_node a "$URL_A"
say "node-a: $URL_A  /healthz $(curl -s "$URL_A/healthz")"
start_node b "$URL_B"
say "node-b: $URL_B  /healthz $(curl -s "$URL_B/healthz")"
say "each made its own audit key and joined the chain:"
psql -A -t -c "SELECT '     seq ' || seq || '  ' || event || '  ' || (data::json->>'node')
  FROM audit WHERE event = 'audit.node_joined' ORDER BY seq"

as() { local u=$1 url=$2; shift 2; ELEVATE_CONFIG_DIR="$T/cfg/$u" ELEVATE_CACHE_DIR="$T/cache/$u" ELEVATE_SERVER="$url" "$@"; }

step "alice asks node A for prod-readonly for $WINDOW"
out=$(as alice "$URL_A" bin/elevate request prod-readonly --for "$WINDOW" --reason "look at the 5xx spike" --ticket INC-4711)
printf '%s\n' "$out" | sed 's/^/     /'
ID=$(printf '%s\n' "$out" | grep -o 'req_[a-z0-9]*' | head -1)
say "node B knows it at once (one database):"
run as alice "$URL_B" bin/elevate status "$ID" | head -3 || true

step "carol's approval mail arrives: one of the two nodes' mailers claimed and sent it"
LINK=$(demo_mail_link "$MAILDEV_WEB")
[ -n "$LINK" ] || { echo "no approval mail arrived (see $T/a/elevated.log, $T/b/elevated.log)" >&2; exit 1; }
say "the outbox (each mail claimed by one node before it is sent, so none goes twice):"
psql -A -t -F '  ' -c "SELECT '     ' || rcpt, state, 'sent by ' || coalesce(claimed_by, '-')
  FROM outbox ORDER BY id"
say "link: ${LINK:0:60}... (node B's address)"

step "carol opens the link on node B and clicks Approve (a POST, as her browser would)"
curl -s "$LINK" | python3 -c 'import re,sys,html; t=sys.stdin.read(); print("     GET: page title:", html.unescape(re.search(r"<title>(.*?)</title>",t,re.S).group(1).strip()), "(decides nothing)")'
curl -s -X POST --data 'decision=approve&comment=go+ahead' "$LINK" | python3 -c 'import re,sys,html; t=sys.stdin.read(); print("     POST:", html.unescape(re.search(r"<h1[^>]*>(.*?)</h1>",t,re.S).group(1).strip()))'
for _ in $(seq 100); do
  as alice "$URL_A" bin/elevate --json status "$ID" | grep -q '"state": *"active"' && break; sleep 0.1
done
run as alice "$URL_A" bin/elevate status "$ID"

step "alice uses the role with the real AWS CLI; credential_process asks node A"
mkdir -p "$HOME/.aws"
cat >"$HOME/.aws/config" <<CFG
[profile prod]
region = ap-northeast-1
credential_process = env ELEVATE_SERVER=$URL_A $ROOT/bin/elevate creds --profile prod-readonly
CFG
export ELEVATE_CONFIG_DIR="$T/cfg/alice" ELEVATE_CACHE_DIR="$T/cache/alice"
AWSCLI=(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN AWS_PROFILE=prod /usr/bin/aws --endpoint-url "$EMU")
run "${AWSCLI[@]}" sts get-caller-identity
CREDS=$(as alice "$URL_A" bin/elevate creds "$ID")

step "alice opens an SSM session through node A (a stand-in plugin shows what it gets)"
demo_plugin "$T/plugin"
ELEVATE_SSM_PLUGIN="$T/plugin/session-manager-plugin" run as alice "$URL_A" bin/elevate ssm "$ID" i-0123456789abcdef0

if [ -n "${DEMO_KEEP:-}" ]; then
  step "Left running (DEMO_KEEP=1)"
  cat <<TXT
   Inbox:    http://127.0.0.1:$MAILDEV_WEB
   Node A:   $URL_A (config $T/a/elevated.json, pid ${NODE_PID[0]})
   Node B:   $URL_B (config $T/b/elevated.json, pid ${NODE_PID[1]})
   Database: $PG_BIN/psql -d '$PG_URL'
   Be alice: export ELEVATE_CONFIG_DIR=$T/cfg/alice ELEVATE_SERVER=$URL_B
             bin/elevate request prod-readonly --for 10m --reason "..." --ticket INC-1
   Kill A:   kill -9 ${NODE_PID[0]}
   Stop:     kill ${NODE_PID[*]} ${PIDS[*]}; rm -rf $T
TXT
  exit 0
fi

step "Node A dies (SIGKILL) half-way through the grant; node B goes on alone"
kill -9 "${NODE_PID[0]}"
wait "${NODE_PID[0]}" 2>/dev/null || true
say "node-a: $(curl -s -m 2 "$URL_A/healthz" || echo 'no answer')"
say "node-b: $(curl -s "$URL_B/healthz")"
run as alice "$URL_B" bin/elevate status "$ID" | grep -E "state|window|session|i-0" || true

step "The window ends: node B revokes (nobody has to ask)"
END=$(as alice "$URL_B" bin/elevate --json status "$ID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["window_end"])')
demo_countdown "$END"
say "the very same credentials, used directly, after the window:"
demo_denied "$CREDS" "$T/denied.out"
for _ in $(seq 100); do
  as alice "$URL_B" bin/elevate --json status "$ID" | grep -q '"state": *"ended"' && break; sleep 0.1
done
run as alice "$URL_B" bin/elevate status "$ID" | grep -E "state|ended|session|i-0" || true
say "the SSM session as AWS sees it now:"
curl -s "$EMU/_emulator/state" | python3 -c 'import json,sys; [print("     %s  %s" % (s["SessionId"], s["Status"])) for s in json.load(sys.stdin)["sessions"]]'
say "the grant in the audit (node A was dead by then: node B wrote the records from the window end on):"
for _ in $(seq 1 60); do
  as carol "$URL_B" bin/elevate --json audit show --event grant >"$T/grant.json" 2>/dev/null || true
  grep -q 'grant.revocation_verified' "$T/grant.json" && break
  sleep 0.5
done
python3 - "$T/grant.json" "$ID" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["records"]:
    if r["request_id"] != sys.argv[2] or r["event"] == "grant.credentials_fetched":
        continue
    d = r.get("data") or {}
    extra = ""
    if r["event"] == "grant.revocation_verified":
        extra = "%s refused (%s) %.3f s after the %s" % (d.get("action"), d.get("code"),
                                                         d.get("seconds", 0),
                                                         str(d.get("from", "")).replace("_", " "))
    elif "node" in d:
        extra = "by %s" % d["node"]
    print("     %s  %-28s %s" % (r["time"], r["event"], extra))
PY
grep -q "grant.revocation_verified" "$T/grant.json" || { echo "   no revocation receipt for the grant" >&2; exit 1; }

step "The access review through node B (elevate report --since 1h)"
run as carol "$URL_B" bin/elevate report --since 1h

step "The audit chain both nodes wrote verifies with both nodes' keys"
kill "${NODE_PID[1]}"; wait "${NODE_PID[1]}" 2>/dev/null || true
say "checkpoints by node:"
psql -A -t -c "SELECT '     ' || node || ': ' || n || ' checkpoints' FROM (SELECT
  data::json->>'node' AS node, count(*) AS n FROM audit WHERE event = 'audit.checkpoint'
  GROUP BY 1) c ORDER BY 1"
say "node B's export, with both nodes' first keys (what an auditor keeps):"
run bin/elevate audit verify "$T/b/audit.jsonl" --pubkey "$(cat "$T/a/state/audit.pub")" \
  --pubkey "$(cat "$T/b/state/audit.pub")"
say "and the chain in the database, walked whole by node B's own check:"
run bin/elevated check --audit --config "$T/b/elevated.json"
step "Demo complete"
