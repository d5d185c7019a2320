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

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say()  { printf '   %s\n' "$*"; }
run()  { printf '   $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/     /'; return "${PIPESTATUS[0]}"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
if [ -z "${DEMO_KEEP:-}" ]; then trap cleanup EXIT; fi

step "Starting the AWS emulator, a MailDev inbox and the broker (state in $T)"
/usr/bin/python3 tests/aws-emulator/emulator.py --port 0 --port-file "$T/emu.port" --quiet \
  >"$T/emulator.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do [ -s "$T/emu.port" ] && break; sleep 0.1; done
EMU="http://127.0.0.1:$(cat "$T/emu.port")"
say "AWS emulator: $EMU (verifies every SigV4 signature, enforces IAM policies)"

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
for u in alice carol; do
  ELEVATE_CONFIG_DIR="$T/cfg/$u" bin/elevate init --server "$URL" --user "$u" >/dev/null
done
pub() { python3 -c "import base64,sys; k=base64.b64decode(open(sys.argv[1]).read()); print('ed25519:'+base64.b64encode(k[32:]).decode())" "$T/cfg/$1/key"; }
mkdir -p "$T/policies"
cat >"$T/policies/demo.json" <<JSON
{
  "users": {
    "alice": {"email": "alice@example.com", "keys": ["$(pub alice)"]},
    "carol": {"email": "carol@example.com", "keys": ["$(pub carol)"]}
  },
  "groups": {"engineers": ["alice"], "sre-leads": ["carol"]},
  "profiles": {
    "prod-readonly": {
      "role_arn": "arn:aws:iam::111122223333:role/ProdReadOnly",
      "region": "ap-northeast-1",
      "requesters": ["group:engineers"],
      "approvers": ["group:sre-leads"],
      "approvals_required": 1,
      "default_duration": "15m", "max_duration": "1h", "pending_ttl": "30m",
      "reason_required": true, "ticket_pattern": "^(INC|CHG)-[0-9]+\$",
      "ssm": {"targets": ["i-0123456789abcdef0"], "documents": ["SSM-SessionManagerRunShell"]},
      "revocation_probe": "ec2:DescribeRegions"
    }
  }
}
JSON
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
run bin/elevated check --config "$T/elevated.json"
AWS_ACCESS_KEY_ID=AKIDBROKER0000000001 AWS_SECRET_ACCESS_KEY=broker-secret-key-for-tests-only \
AWS_EC2_METADATA_DISABLED=true bin/elevated --config "$T/elevated.json" >"$T/elevated.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.1; done
say "broker: $URL (log: $T/elevated.log)"

as() { local u=$1; shift; ELEVATE_CONFIG_DIR="$T/cfg/$u" ELEVATE_CACHE_DIR="$T/cache/$u" "$@"; }

step "alice asks for prod-readonly for $WINDOW"
out=$(as alice bin/elevate request prod-readonly --for "$WINDOW" --reason "look at the 5xx spike" --ticket INC-4711)
printf '%s\n' "$out" | sed 's/^/     /'
ID=$(printf '%s\n' "$out" | grep -o 'req_[a-z0-9]*' | head -1)

step "carol's approval mail arrives in MailDev"
LINK=""
for _ in $(seq 100); do
  LINK=$(curl -sf "http://127.0.0.1:$MAILDEV_WEB/email" | python3 -c '
import json,re,sys
for m in json.load(sys.stdin):
    if any(t["address"]=="carol@example.com" for t in m["to"]):
        l=re.search(r"https?://\S+/approve/[A-Za-z0-9_-]+", m.get("text",""))
        if l: print(l.group(0)); break' || true)
  [ -n "$LINK" ] && break; sleep 0.1
done
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
mkdir -p "$T/plugin"
cat >"$T/plugin/session-manager-plugin" <<'PLUGIN'
#!/bin/sh
# Stand-in for AWS's session-manager-plugin: shows what elevate hands it, then exits.
[ "$1" = "--version" ] && { echo 1.2.650.0; exit 0; }
python3 - "$@" <<'PY'
import json, os, sys
a = sys.argv[1:]
resp = json.loads(os.environ[a[0]] if a[0] == "AWS_SSM_START_SESSION_RESPONSE" else a[0])
print("     plugin: session %s to %s in %s via %s" % (resp["SessionId"], json.loads(a[4])["Target"], a[1], a[5]))
print("     plugin: response passed in %s; credentials for %s in the environment"
      % ("$" + a[0] if a[0].isupper() else "argv", os.environ.get("AWS_ACCESS_KEY_ID", "?")[:8] + "..."))
PY
PLUGIN
chmod +x "$T/plugin/session-manager-plugin"
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
say "window ends at $END"
python3 - "$END" <<'PY'
import sys, time, datetime
end = datetime.datetime.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
tty = sys.stdout.isatty()
last = None
while time.time() < end + 0.3:
    left = max(end - time.time(), 0)
    if tty:
        print("\r     %4.1f s left " % left, end="", flush=True)
    elif last is None or last - left >= 5:
        print("     %2.0f s left" % left, flush=True)
        last = left
    time.sleep(0.2)
if tty:
    print()
PY
say "the very same credentials, used directly, after the window (STS would allow 15 min):"
eval "$(printf '%s' "$CREDS" | python3 -c 'import json,sys,shlex; c=json.load(sys.stdin); print("K=%s S=%s X=%s" % tuple(shlex.quote(c[k]) for k in ("AccessKeyId","SecretAccessKey","SessionToken")))')"
if env -u AWS_PROFILE AWS_ACCESS_KEY_ID="$K" AWS_SECRET_ACCESS_KEY="$S" AWS_SESSION_TOKEN="$X" \
   AWS_DEFAULT_REGION=ap-northeast-1 /usr/bin/aws --endpoint-url "$EMU" ec2 describe-instances >"$T/denied.out" 2>&1; then
  echo "   UNEXPECTED: the call still worked" >&2; exit 1
fi
sed 's/^/     /' "$T/denied.out" | grep -v '^ *$' | head -3
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
