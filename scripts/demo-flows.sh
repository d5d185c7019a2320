#!/usr/bin/env bash
# make demo-flows: the access flows beyond "ask and wait" (issue 13) on loopback, against
# the project's AWS emulator: a request an auto-approval rule approves at once; break-glass
# while the mail server is down (active at once, the notices wait in the outbox and go out
# when it is back), its review rejecting it (revoked at once); the AWS console through the
# federation endpoint; several profiles in one request (a bundle), each with its own
# approvers and credentials, revoked together; a scheduled window that starts at its time,
# not at the approval; every step told to a signed webhook, whose receiver checks each
# delivery's HMAC signature. DEMO_KEEP=1 leaves everything running.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
T=$(mktemp -d /tmp/elevate-flows.XXXXXX)
PIDS=()
. scripts/demo-lib.sh
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
if [ -z "${DEMO_KEEP:-}" ]; then trap cleanup EXIT; fi
as() { local u=$1; shift; ELEVATE_CONFIG_DIR="$T/cfg/$u" ELEVATE_CACHE_DIR="$T/cache/$u" "$@"; }
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[k] if d is not None else None
print(d)' "$1"; }

step "Starting the AWS emulator and the broker (state in $T); no mail server yet"
demo_emulator "$T"
SMTP_PORT=$(port)
PORT=$(port)
WPORT=$(port)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/webhook.key"; chmod 600 "$T/webhook.key"
URL="http://127.0.0.1:$PORT"
export HOME="$T/home"; mkdir -p "$HOME"
for u in alice bob carol erin; do
  ELEVATE_CONFIG_DIR="$T/cfg/$u" bin/elevate init --server "$URL" --user "$u" >/dev/null
done
pub() { demo_pub "$T/cfg/$1/key"; }
mkdir -p "$T/policies"
cat >"$T/policies/flows.json" <<JSON
{
  "users": {
    "alice": {"email": "alice@example.com", "keys": ["$(pub alice)"]},
    "bob":   {"email": "bob@example.com",   "keys": ["$(pub bob)"]},
    "carol": {"email": "carol@example.com", "keys": ["$(pub carol)"]},
    "erin":  {"email": "erin@example.com",  "keys": ["$(pub erin)"]}
  },
  "groups": {"oncall": ["alice", "bob"], "sre-leads": ["carol"], "security": ["erin"]},
  "profiles": {
    "prod-readonly": {
      "role_arn": "arn:aws:iam::111122223333:role/ProdReadOnly",
      "region": "ap-northeast-1",
      "requesters": ["group:oncall"], "approvers": ["group:sre-leads"],
      "default_duration": "15m", "max_duration": "1h",
      "ticket_pattern": "^INC-[0-9]+\$", "ticket_required": false,
      "auto_approve": [{"name": "oncall-with-incident", "requesters": ["group:oncall"],
                        "max_duration": "30m", "ticket_pattern": "^INC-[0-9]+\$",
                        "hours": {"tz": "Asia/Tokyo", "days": "mon-sun",
                                  "from": "00:00", "to": "24:00"}}],
      "break_glass": {"requesters": ["group:oncall"], "max_duration": "1h",
                      "notify": ["group:sre-leads"], "review_within": "4h"}
    },
    "prod-admin": {
      "role_arn": "arn:aws:iam::111122223333:role/ProdAdmin",
      "region": "ap-northeast-1",
      "requesters": ["group:oncall"], "approvers": ["group:security"],
      "default_duration": "15m", "max_duration": "1h"
    }
  }
}
JSON
cat >"$T/elevated.json" <<JSON
{
  "listen": "127.0.0.1:$PORT", "public_url": "$URL",
  "state_dir": "$T/state", "policies": "$T/policies", "templates": "$ROOT/templates",
  "smtp": {"url": "smtp://127.0.0.1:$SMTP_PORT", "from": "elevate@example.com", "timeout": "3s"},
  "aws": {"region": "ap-northeast-1", "endpoint": "$EMU"},
  "audit": {"file": "$T/audit.jsonl"},
  "auditors": "group:security", "admins": "group:security",
  "notify": {"webhooks": [{"name": "chat", "url": "http://127.0.0.1:$WPORT/hook",
                           "kind": "generic", "secret_file": "$T/webhook.key"}],
             "webhook_retry_max": "2s"}
}
JSON
demo_broker "$T/elevated.json" "$URL"
/usr/bin/python3 scripts/demo-webhook-rx.py "$WPORT" "$T/webhook.key" "$T/webhook.log" & PIDS+=($!)
say "broker: $URL (log: $T/elevated.log); SMTP at 127.0.0.1:$SMTP_PORT is DOWN"
say "a webhook receiver on 127.0.0.1:$WPORT checks every delivery's signature ($T/webhook.log)"

step "1. Auto-approval: alice is on call and names an incident; the rule approves at once"
run as alice bin/elevate request prod-readonly --for 15m --reason "5xx spike" --ticket INC-4711 --wait
AID=$(as alice bin/elevate --json list --mine | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"][0]["id"])')
run as alice bin/elevate status "$AID" | grep -E "state|auto-approved|approvals|quorum"
say "without an incident ticket the same request waits for carol, as before:"
run as alice bin/elevate request prod-readonly --for 15m --reason "just looking"

step "2. Break-glass while the mail server is down"
run as bob bin/elevate request prod-readonly --break-glass --for 30m --reason "payments down, INC pending" --wait
BID=$(as bob bin/elevate --json list --mine | python3 -c 'import json,sys; print([r for r in json.load(sys.stdin)["requests"] if r.get("break_glass")][0]["id"])')
run as bob bin/elevate status "$BID" | grep -E "state|break-glass|window"
say "bob's credentials work right away (credential_process):"
BK=$(as bob bin/elevate creds "$BID" | jget AccessKeyId)
say "  access key ${BK:0:8}... issued to bob's role session"
say "the notices to carol (approver) and erin (security) wait in the outbox:"
sqlite3 "$T/state/elevate.db" "SELECT '     '||state||'  '||rcpt||'  '||subject FROM outbox WHERE subject LIKE 'BREAK-GLASS%'"

step "The mail server comes back: the notices go out"
mkdir -p "$T/mail"
/usr/bin/python3 tests/integration/smtp_sink.py "$SMTP_PORT" "$T/mail" >/dev/null 2>&1 & PIDS+=($!)
for _ in $(seq 600); do
  n=$(grep -l "BREAK-GLASS" "$T/mail"/*.eml 2>/dev/null | wc -l || true)
  [ "$n" -ge 2 ] && break; sleep 0.1
done
for f in "$T/mail"/*.eml; do
  python3 - "$f" <<'PY'
import email, sys
from email import policy
m = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=policy.default)
if m["Subject"].startswith("BREAK-GLASS"):
    print("     to %-18s %s" % (m["To"], m["Subject"]))
PY
done

step "3. carol reviews it: not justified. Deny revokes it at once and flags it"
run as carol bin/elevate deny "$BID" --comment "no incident on record"
for _ in $(seq 100); do
  st=$(as bob bin/elevate --json status "$BID" | jget state); [ "$st" = ended ] && break; sleep 0.1
done
run as bob bin/elevate status "$BID" | grep -E "state|break-glass|ended"
say "bob's credentials (still in his local cache), used directly, are now refused by AWS:"
demo_denied "$(as bob bin/elevate creds "$BID")" "$T/denied.out"
say "what the audit says of it (elevate audit show, as erin of the security team):"
as erin bin/elevate --json audit show --since 1h | python3 -c '
import json,sys
for r in json.load(sys.stdin)["records"]:
    if r["request_id"] == sys.argv[1]:
        print("     %-34s %s" % (r["event"], r["actor"]))' "$BID"

step "4. The AWS console for alice's auto-approved grant (federation sign-in URL)"
CURL_URL=$(as alice bin/elevate console "$AID" --print 2>"$T/console.err")
sed 's/^/     /' "$T/console.err"
say "URL: ${CURL_URL:0:72}..."
say "the federation endpoint signs her in and sends her on to:"
curl -s -o /dev/null -w '     HTTP %{http_code} -> %{redirect_url}\n' "$CURL_URL"

step "5. Several profiles in one request: prod-readonly (carol approves) and prod-admin (erin)"
run as alice bin/elevate request prod-readonly,prod-admin --for 20m --reason "rotate the payments keys"
XID=$(as alice bin/elevate --json list --mine | python3 -c 'import json,sys; print([r for r in json.load(sys.stdin)["requests"] if r.get("bundle")][0]["bundle"])')
say "one mail per approver, one link to one page listing both roles:"
for _ in $(seq 100); do
  n=$(grep -l "$XID" "$T/mail"/*.eml 2>/dev/null | wc -l || true); [ "$n" -ge 2 ] && break; sleep 0.1
done
grep -l "$XID" "$T/mail"/*.eml | while read -r f; do
  python3 - "$f" <<'PY'
import email, sys
from email import policy
m = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=policy.default)
print("     to %-18s %s" % (m["To"], m["Subject"]))
PY
done
run as carol bin/elevate approve "$XID"
say "carol's approval activates prod-readonly only: prod-admin waits for security"
for _ in $(seq 100); do
  st=$(as alice bin/elevate --json status "$XID" | jget states.active); [ "$st" = 1 ] && break; sleep 0.1
done
run as alice bin/elevate list --mine --state pending
run as erin bin/elevate approve "$XID"
for _ in $(seq 100); do
  st=$(as alice bin/elevate --json status "$XID" | jget state); [ "$st" = active ] && break; sleep 0.1
done
say "each profile has its own credentials (elevate creds BUNDLE --profile P):"
PK=$(as alice bin/elevate creds "$XID" --profile prod-readonly)
BK2=$(as alice bin/elevate creds "$XID" --profile prod-admin)
say "  prod-readonly    $(printf '%s' "$PK" | jget AccessKeyId | cut -c1-8)..."
say "  prod-admin       $(printf '%s' "$BK2" | jget AccessKeyId | cut -c1-8)..."
say "without --profile the CLI names the profiles:"
as alice bin/elevate creds "$XID" 2>&1 | sed 's/^/     /' || true
say "revoke on the bundle ends both; AWS then refuses both credentials:"
run as alice bin/elevate revoke "$XID" --reason "done"
demo_denied "$PK" "$T/denied-p.out"
demo_denied "$BK2" "$T/denied-b.out"

step "6. A scheduled window: alice asks now for prod-admin in 5 s; erin approves at once"
run as alice bin/elevate request prod-admin --in 5s --for 10m --reason "nightly migration"
SID=$(as alice bin/elevate --json list --mine | python3 -c 'import json,sys; print([r for r in json.load(sys.stdin)["requests"] if r.get("scheduled_start") and r["state"] == "pending"][0]["id"])')
run as erin bin/elevate approve "$SID"
run as alice bin/elevate status "$SID" | grep -E "state|start"
say "the approval came early; nothing is minted before the scheduled start:"
for _ in $(seq 150); do
  st=$(as alice bin/elevate --json status "$SID" | jget state); [ "$st" = active ] && break; sleep 0.1
done
as alice bin/elevate --json status "$SID" | python3 -c '
import json, sys
from datetime import datetime
d = json.load(sys.stdin)
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
print("     %s: scheduled %s, window %s .. %s (started %.0f s after its time)" % (
    d["state"], d["scheduled_start"], d["window_start"], d["window_end"],
    t(d["window_start"]) - t(d["scheduled_start"])))'

step "7. Every step was told to the webhook, each delivery signed and sent once"
for _ in $(seq 100); do
  q=$(sqlite3 "$T/state/elevate.db" "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'queued'")
  [ "$q" = 0 ] && break; sleep 0.1
done
say "deliveries the broker made: $(sqlite3 "$T/state/elevate.db" "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'sent'") sent, $q queued"
awk '{v[$1]++; e[$3]++} END {for (k in v) printf "     %-10s %d deliveries\n", k, v[k];
     for (k in e) printf "       %-32s %d\n", k, e[k]}' "$T/webhook.log"

step "The audit trail verifies"
kill "${PIDS[1]}"; wait "${PIDS[1]}" 2>/dev/null || true
run bin/elevate audit verify "$T/audit.jsonl" --pubkey "$(cat "$T/state/audit.pub")"
step "Demo complete"
