# demo-lib.sh — what scripts/demo.sh and scripts/demo-ha.sh share, sourced by both (bash):
# how a step prints, the AWS emulator, the users and their policy, carol's approval link
# from the MailDev inbox, the stand-in session-manager-plugin, the countdown to the end of
# the window, and the denied call after it. Each function says what it sets or prints.

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say()  { printf '   %s\n' "$*"; }
run()  { printf '   $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/     /'; return "${PIPESTATUS[0]}"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# demo_emulator DIR: starts the AWS emulator (its pid appended to PIDS), sets EMU.
demo_emulator() {
  /usr/bin/python3 tests/aws-emulator/emulator.py --port 0 --port-file "$1/emu.port" --quiet \
    >"$1/emulator.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 100); do [ -s "$1/emu.port" ] && break; sleep 0.1; done
  EMU="http://127.0.0.1:$(cat "$1/emu.port")"
  say "AWS emulator: $EMU (verifies every SigV4 signature, enforces IAM policies)"
}

# demo_broker CONFIG URL: checks CONFIG with `elevated check`, starts elevated on it with
# the emulator's broker credentials (its pid appended to PIDS, its log next to CONFIG as
# elevated.log) and waits until URL/healthz answers.
demo_broker() {
  run bin/elevated check --config "$1"
  AWS_ACCESS_KEY_ID=AKIDBROKER0000000001 AWS_SECRET_ACCESS_KEY=broker-secret-key-for-tests-only \
  AWS_EC2_METADATA_DISABLED=true bin/elevated --config "$1" >"$(dirname "$1")/elevated.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 100); do curl -sf "$2/healthz" >/dev/null && break; sleep 0.1; done
}

# demo_pub KEYFILE: the public key of an `elevate init` key file, as the policy names it.
demo_pub() {
  python3 -c "import base64,sys; k=base64.b64decode(open(sys.argv[1]).read()); print('ed25519:'+base64.b64encode(k[32:]).decode())" "$1"
}

# demo_users DIR SERVER: alice (an engineer) and carol (an SRE lead) with their keys in
# DIR/cfg/USER, and DIR/policies/demo.json naming them and the profile prod-readonly.
demo_users() {
  local T=$1 u
  for u in alice carol; do
    ELEVATE_CONFIG_DIR="$T/cfg/$u" bin/elevate init --server "$2" --user "$u" >/dev/null
  done
  pub() { demo_pub "$T/cfg/$1/key"; }
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
}

# demo_mail_link WEBPORT: prints the approval link of carol's mail in the MailDev inbox on
# WEBPORT, waiting up to 15 s for it; prints nothing if none came.
demo_mail_link() {
  local link=""
  for _ in $(seq 150); do
    link=$(curl -sf "http://127.0.0.1:$1/email" | python3 -c '
import json,re,sys
for m in json.load(sys.stdin):
    if any(t["address"]=="carol@example.com" for t in m["to"]):
        l=re.search(r"https?://\S+/approve/[A-Za-z0-9_-]+", m.get("text",""))
        if l: print(l.group(0)); break' || true)
    [ -n "$link" ] && break; sleep 0.1
  done
  printf '%s' "$link"
}

# demo_plugin DIR: writes DIR/session-manager-plugin, a stand-in for AWS's that shows what
# elevate hands it.
demo_plugin() {
  mkdir -p "$1"
  cat >"$1/session-manager-plugin" <<'PLUGIN'
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
  chmod +x "$1/session-manager-plugin"
}

# demo_countdown END: waits until END (the window's end, ISO 8601 UTC) has passed, showing
# the seconds left.
demo_countdown() {
  say "window ends at $1"
  python3 - "$1" <<'PY'
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
}

# demo_denied CREDS OUT: calls EC2 with the credentials of CREDS (credential_process JSON)
# directly, and fails (exit 1) if the call works; prints AWS's refusal (also in OUT).
demo_denied() {
  local K S X
  eval "$(printf '%s' "$1" | python3 -c 'import json,sys,shlex; c=json.load(sys.stdin); print("K=%s S=%s X=%s" % tuple(shlex.quote(c[k]) for k in ("AccessKeyId","SecretAccessKey","SessionToken")))')"
  if env -u AWS_PROFILE AWS_ACCESS_KEY_ID="$K" AWS_SECRET_ACCESS_KEY="$S" AWS_SESSION_TOKEN="$X" \
     AWS_DEFAULT_REGION=ap-northeast-1 /usr/bin/aws --endpoint-url "$EMU" ec2 describe-instances >"$2" 2>&1; then
    echo "   UNEXPECTED: the call still worked" >&2; return 1
  fi
  sed 's/^/     /' "$2" | grep -v '^ *$' | head -3
}
