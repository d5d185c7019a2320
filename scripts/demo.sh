#!/usr/bin/env bash
# make demo: the whole chain on loopback. An engineer asks for a role, the approver gets
# a mail (MailDev inbox), follows the link and approves, the engineer uses the role with
# the real AWS CLI against the project's AWS emulator, and the same call is denied the
# second the window ends. DEMO_KEEP=1 leaves everything running.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WINDOW=${DEMO_WINDOW:-20s}
MAILDEV_WEB=${DEMO_MAILDEV_WEB:-1080}
MAILDEV_SMTP=${DEMO_MAILDEV_SMTP:-1025}
T=$(mktemp -d /tmp/elevate-demo.XXXXXX)
PIDS=()
. scripts/demo-lib.sh
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
if [ -z "${DEMO_KEEP:-}" ]; then trap cleanup EXIT; fi

step "Starting the AWS emulator, a MailDev inbox and the broker (state in $T)"
demo_emulator "$T"

MAILDEV=tests/browser/node_modules/.bin/maildev
if python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$MAILDEV_WEB))==0)"; then
  "$MAILDEV" --ip 127.0.0.1 --web "$MAILDEV_WEB" --smtp "$MAILDEV_SMTP" --silent \
    >"$T/maildev.log" 2>&1 & PIDS+=($!)
else
  echo "port $MAILDEV_WEB is taken: stop what uses it or set DEMO_MAILDEV_WEB" >&2; exit 1
fi
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$MAILDEV_WEB/email" >/dev/null && break; sleep 0.1; done
say "MailDev inbox: http://127.0.0.1:$MAILDEV_WEB"

PORT=$(port)
URL="http://127.0.0.1:$PORT"
export HOME="$T/home"; mkdir -p "$HOME"
demo_users "$T" "$URL"
cat >"$T/elevated.json" <<JSON
{
  "listen": "127.0.0.1:$PORT", "public_url": "$URL",
  "state_dir": "$T/state", "policies": "$T/policies", "templates": "$ROOT/templates",
  "smtp": {"url": "smtp://127.0.0.1:$MAILDEV_SMTP", "from": "elevate@example.com"},
  "aws": {"region": "ap-northeast-1", "endpoint": "$EMU"},
  "audit": {"file": "$T/audit.jsonl"},
  "auditors": "group:sre-leads", "admins": "group:sre-leads"
}
JSON
demo_broker "$T/elevated.json" "$URL"
say "broker: $URL (log: $T/elevated.log)"

as() { local u=$1; shift; ELEVATE_CONFIG_DIR="$T/cfg/$u" ELEVATE_CACHE_DIR="$T/cache/$u" "$@"; }

step "alice asks for prod-readonly for $WINDOW"
out=$(as alice bin/elevate request prod-readonly --for "$WINDOW" --reason "look at the 5xx spike" --ticket INC-4711)
printf '%s\n' "$out" | sed 's/^/     /'
ID=$(printf '%s\n' "$out" | grep -o 'req_[a-z0-9]*' | head -1)

step "carol's approval mail arrives in MailDev"
LINK=$(demo_mail_link "$MAILDEV_WEB")
[ -n "$LINK" ] || { echo "no approval mail arrived (see $T/elevated.log)" >&2; exit 1; }
say "link: ${LINK:0:60}..."
say "GET shows the request and two buttons; it decides nothing:"
curl -s "$LINK" | python3 -c 'import re,sys,html; t=sys.stdin.read(); print("     page title:", html.unescape(re.search(r"<title>(.*?)</title>",t,re.S).group(1).strip()))'
run as alice bin/elevate status "$ID" | head -3 || true

step "carol clicks Approve (a POST, as her browser would)"
curl -s -X POST --data 'decision=approve&comment=go+ahead' "$LINK" | python3 -c 'import re,sys,html; t=sys.stdin.read(); print("     result:", html.unescape(re.search(r"<h1[^>]*>(.*?)</h1>",t,re.S).group(1).strip()))'
run as alice bin/elevate status "$ID"

step "alice uses the role with the real AWS CLI (credential_process = elevate creds)"
mkdir -p "$HOME/.aws"
cat >"$HOME/.aws/config" <<CFG
[profile prod]
region = ap-northeast-1
credential_process = $ROOT/bin/elevate creds --profile prod-readonly
CFG
export ELEVATE_CONFIG_DIR="$T/cfg/alice" ELEVATE_CACHE_DIR="$T/cache/alice"
AWSCLI=(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN AWS_PROFILE=prod /usr/bin/aws --endpoint-url "$EMU")
run "${AWSCLI[@]}" sts get-caller-identity
run "${AWSCLI[@]}" ec2 describe-instances --query 'Reservations[].Instances[].InstanceId' --output text

step "alice opens an SSM session through the broker (a stand-in plugin shows what it gets)"
demo_plugin "$T/plugin"
ELEVATE_SSM_PLUGIN="$T/plugin/session-manager-plugin" run as alice bin/elevate ssm "$ID" i-0123456789abcdef0

if [ -n "${DEMO_KEEP:-}" ]; then
  step "Left running (DEMO_KEEP=1)"
  cat <<TXT
   Inbox:   http://127.0.0.1:$MAILDEV_WEB
   Broker:  $URL   (config $T/elevated.json)
   Be alice: export ELEVATE_CONFIG_DIR=$T/cfg/alice
             bin/elevate request prod-readonly --for 10m --reason "..." --ticket INC-1
   Be carol: open the new mail in the inbox and click the link, or
             ELEVATE_CONFIG_DIR=$T/cfg/carol bin/elevate approve ID
   AWS CLI:  AWS_CONFIG_FILE=$HOME/.aws/config AWS_PROFILE=prod aws --endpoint-url $EMU ec2 describe-instances
   Stop:     kill ${PIDS[*]}
TXT
  exit 0
fi

CREDS=$(as alice bin/elevate creds "$ID")
step "Waiting for the window to end (no broker action needed: the session policy ends it)"
END=$(as alice bin/elevate --json status "$ID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["window_end"])')
demo_countdown "$END"
say "the very same credentials, used directly, after the window (STS would allow 15 min):"
demo_denied "$CREDS" "$T/denied.out"
say "and credential_process now gets nothing from the broker:"
rm -rf "$T/cache/alice"
"${AWSCLI[@]}" ec2 describe-instances 2>&1 | grep -v '^ *$' | head -2 | sed 's/^/     /' || true
run as alice bin/elevate status "$ID" | grep -E "state|ended|session|i-0" || true
say "the SSM session as AWS sees it now:"
curl -s "$EMU/_emulator/state" | python3 -c 'import json,sys; [print("     %s  %s" % (s["SessionId"], s["Status"])) for s in json.load(sys.stdin)["sessions"]]'

step "The revocation receipt: the broker tried the grant's own credentials until AWS refused"
for _ in $(seq 1 60); do
  as carol bin/elevate --json audit show --event grant.revocation_verified >"$T/receipt.json" 2>/dev/null || true
  grep -q "$ID" "$T/receipt.json" && break
  sleep 0.5
done
python3 - "$T/receipt.json" "$ID" <<'PY' || { echo "   no revocation receipt for the grant" >&2; exit 1; }
import json, sys
recs = [r for r in json.load(open(sys.argv[1]))["records"] if r["request_id"] == sys.argv[2]]
d = recs[-1]["data"]
print("     grant.revocation_verified: %s refused (%s) %.3f s after the %s, attempt %d"
      % (d["action"], d["code"], d["seconds"], d["from"].replace("_", " "), d["attempts"]))
PY
step "The access review an auditor runs (elevate report --since 1h)"
run as carol bin/elevate report --since 1h

step "The audit trail verifies (hash chain + signed checkpoint)"
kill "${PIDS[2]}"; wait "${PIDS[2]}" 2>/dev/null || true
run bin/elevate audit verify "$T/audit.jsonl" --pubkey "$(cat "$T/state/audit.pub")"
step "Demo complete"
