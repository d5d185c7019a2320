"""Issue 2: the request service end to end — real elevated, real CLI, real store."""
import json
import os
import sqlite3
import time

import harness
from harness import wait_for


def _states(b, rid, user='alice'):
    return b.get(rid, user)['state']


def test_happy_path_cli(ctx):
    b = ctx.broker()
    b.start()
    r = b.cli('alice', 'request', 'dev', '--for', '4s', '--reason', 'look at logs')
    assert r.returncode == 0, r.stderr
    rid = [w for w in r.stdout.split() if w.startswith('req_')][0]
    j = b.cli_json('alice', 'status', rid)
    assert j['state'] == 'pending' and j['quorum']['met'] is False
    # --wait: the broker answers once the vote is recorded (activating) and the CLI
    # follows the minting; it exits 0 only once the grant is active
    r = b.cli('carol', 'approve', rid, '--comment', 'ok', '--wait')
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'approved %s (dev for alice)' % rid in r.stdout and 'active until' in r.stdout, \
        r.stdout
    j = b.get(rid)
    assert j['state'] in ('active', 'ending', 'ended'), j
    assert j['approvals'][0]['approver'] == 'carol' and j['approvals'][0]['comment'] == 'ok'
    assert j['grant']['role_session_name'].startswith('elevate.alice.')
    end = j['window_end']
    wait_for(lambda: _states(b, rid) == 'ended', 15, what='window end')
    ev = b.events(rid)
    for want in ['request.created', 'request.approval', 'grant.activated', 'grant.window_ended',
                 'grant.ended']:
        assert want in ev, (want, ev)
    assert ev.index('request.created') < ev.index('grant.activated') < ev.index('grant.ended')


def test_deny(ctx):
    b = ctx.broker().start()
    j = b.request()
    st, d = b.api('dave', 'POST', '/v1/requests/%s/deny' % j['id'], {'comment': 'not now'})
    assert st == 200 and d['state'] == 'denied', (st, d)
    assert 'request.denied' in b.events(j['id'])
    st, d = b.approve(j['id'], 'carol')
    assert st == 409 and d['error']['code'] == 'conflict', (st, d)


def test_cancel(ctx):
    b = ctx.broker().start()
    j = b.request()
    r = b.cli('bob', 'cancel', j['id'])
    assert r.returncode != 0   # not bob's request
    r = b.cli('alice', 'cancel', j['id'])
    assert r.returncode == 0, r.stderr
    assert b.get(j['id'])['state'] == 'cancelled'
    assert 'request.cancelled' in b.events(j['id'])
    st, d = b.approve(j['id'])
    assert st == 409


def test_lapse_by_timer(ctx):
    profiles = json.loads(json.dumps(__import__('harness').DEFAULT_PROFILES))
    profiles['dev']['pending_ttl'] = '2s'
    b = ctx.broker(profiles=profiles).start()
    j = b.request(profile='dev', ticket=None)
    # nobody reads the request: the timer alone must lapse it, audited
    wait_for(lambda: 'request.lapsed' in b.events(j['id']), 10, what='lapse')
    assert b.get(j['id'])['state'] == 'lapsed'
    st, d = b.approve(j['id'])
    assert st == 409


def test_quorum_across_two_groups(ctx):
    b = ctx.broker().start()
    j = b.request(profile='prod-admin', duration='5m', ticket=None)
    st, d = b.approve(j['id'], 'carol')
    assert st == 200 and d['state'] == 'pending', d
    assert 'group:security' in d['quorum']['missing'], d['quorum']
    st, d = b.approve(j['id'], 'dave')      # a second sre-lead does not satisfy security
    assert st == 200 and d['state'] == 'pending', d
    b.approve_until(j['id'], user='erin')
    st, d = b.approve(j['id'], 'carol')     # a vote after the decision
    assert st == 409


def test_self_approval_refused(ctx):
    b = ctx.broker().start()
    j = b.request(user='carol', profile='prod-admin', duration='5m', ticket=None)
    st, d = b.approve(j['id'], 'carol')
    assert st == 403 and d['error']['code'] == 'forbidden', (st, d)
    assert 'own' in d['error']['message']
    assert b.get(j['id'], 'carol')['state'] == 'pending'


def test_requester_not_allowed(ctx):
    b = ctx.broker().start()
    r = b.cli('erin', 'request', 'prod-readonly', '--for', '10m', '--reason', 'x',
              '--ticket', 'INC-9')
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert 'erin is not in its requesters (group:engineers)' in r.stderr, r.stderr
    st, d = b.api('alice', 'POST', '/v1/requests', {'profile': 'prod-readonly', 'duration': '2h',
                                                    'reason': 'x', 'ticket': 'INC-1'})
    assert st == 400 and 'max_duration' in d['error']['message'], d
    st, d = b.api('alice', 'POST', '/v1/requests', {'profile': 'prod-readonly', 'duration': '5m',
                                                    'reason': 'x', 'ticket': 'JIRA-1'})
    assert st in (400, 403) and 'ticket' in d['error']['message'], d


def test_signature_replay_skew_forgery(ctx):
    b = ctx.broker().start()
    import base64
    import os as _os
    nonce = base64.urlsafe_b64encode(_os.urandom(16)).decode().rstrip('=')
    st, _ = b.api('alice', 'GET', '/v1/requests', nonce=nonce)
    assert st == 200
    st, d = b.api('alice', 'GET', '/v1/requests', nonce=nonce)
    assert st == 401 and d['error']['code'] == 'replayed_nonce', d
    from harness import iso
    st, d = b.api('alice', 'GET', '/v1/requests', date=iso(time.time() - 400))
    assert st == 401 and d['error']['code'] == 'clock_skew', d
    # alice's name, bob's key
    date = iso(time.time())
    sig = b.users['bob'].sign('GET', '/v1/requests', date, nonce + 'x', b'')
    st, d = b.api('alice', 'GET', '/v1/requests', date=date, nonce=nonce + 'x', sig=sig)
    assert st == 401 and d['error']['code'] == 'bad_signature', d
    # a signed body changed in flight
    date = iso(time.time())
    body = json.dumps({'profile': 'dev', 'duration': '5m', 'reason': 'a'}).encode()
    sig = b.users['alice'].sign('POST', '/v1/requests', date, nonce + 'y', body)
    st, d = b.api('alice', 'POST', '/v1/requests', raw=body.replace(b'5m', b'8h'), date=date,
                  nonce=nonce + 'y', sig=sig)
    assert st == 401, d
    st, d = b.api('mallory', 'GET', '/v1/requests', sig='ed25519=AAAA')
    assert st == 401 and d['error']['code'] == 'unknown_user', d
    refusals = [r for r in b.audit() if r['event'] == 'auth.refused']
    reasons = sorted(r['data']['reason'] for r in refusals)
    assert reasons == ['bad_signature', 'bad_signature', 'clock_skew', 'replayed_nonce',
                       'unknown_user'], reasons
    # the nonce survives a restart: replay after restart is still refused
    b.stop()
    b.start()
    st, d = b.api('alice', 'GET', '/v1/requests', nonce=nonce)
    assert st == 401 and d['error']['code'] == 'replayed_nonce', d


def test_bad_input(ctx):
    b = ctx.broker().start()
    st, d = b.api('alice', 'POST', '/v1/requests', raw=b'{"profile": "dev", ' + b'x' * 70000 + b'}')
    assert st == 413 and d['error']['code'] == 'payload_too_large', (st, d)
    st, d = b.api('alice', 'POST', '/v1/requests', raw=b'{"profile": "dev",')
    assert st == 400 and d['error']['code'] == 'invalid_json', (st, d)
    st, d = b.api('alice', 'POST', '/v1/requests', raw=b'[1,2]')
    assert st == 400, (st, d)
    st, d = b.api('alice', 'POST', '/v1/requests', {'profile': 'dev', 'duraton': '5m'})
    assert st == 400 and 'duraton' in d['error']['message'], d
    st, d = b.api('alice', 'POST', '/v1/requests', {'profile': 'dev', 'duration': 'forever'})
    assert st == 400, d
    st, d = b.api('alice', 'POST', '/v1/requests', {'profile': 'nope', 'reason': 'x'})
    assert st in (403, 404) and 'nope' in d['error']['message'], d
    st, d = b.api('alice', 'GET', '/v1/requests/req_doesnotexist')
    assert st == 404 and d['error']['code'] == 'not_found', d
    st, d = b.api('alice', 'GET', '/v1/requests?state=bogus')
    assert st == 400, d
    st, d = b.api('alice', 'GET', '/v1/nothing')
    assert st == 404, d
    # a signature header that is not UTF-8 (sent as Latin-1): refused by the front
    st, d = b.api('alice', 'GET', '/v1/requests', headers={'X-Elevate-Nonce': 'caf\xe9'})
    assert st == 400 and d['error']['code'] == 'bad_request' and 'UTF-8' in \
        d['error']['message'], (st, d)
    # nothing was created by any of that
    st, d = b.api('alice', 'GET', '/v1/requests')
    assert st == 200 and d['requests'] == [], d


def test_kill9_restart_loses_nothing(ctx):
    b = ctx.broker().start()
    ids = [b.request(reason='r%d' % i)['id'] for i in range(5)]
    b.kill9()
    b.start()
    got = {r['id']: r['state'] for r in b.cli_json('alice', 'list', '--mine')['requests']}
    for rid in ids:
        assert got.get(rid) == 'pending', (rid, got)
    b.approve_until(ids[0])
    ev = [r['event'] for r in b.audit()]
    assert ev.count('request.created') == 5


def test_nonces_survive_kill9_and_calls_signed_before_a_restart_are_refused(ctx):
    """API nonces are group-committed without an fsync of their own: a SIGKILL right
    after the answers loses none of them (their WAL write reached the kernel first). An
    OS crash could lose the last ones, so a call dated before the restart is refused."""
    import base64
    import os as _os
    from harness import iso
    b = ctx.broker().start()
    nonces = [base64.urlsafe_b64encode(_os.urandom(16)).decode().rstrip('=')
              for _ in range(20)]
    for n in nonces:
        st, _ = b.api('alice', 'GET', '/v1/requests', nonce=n)
        assert st == 200
    b.kill9()
    t0 = time.time()
    b.start()
    for n in nonces:
        st, d = b.api('alice', 'GET', '/v1/requests', nonce=n)
        assert st == 401 and d['error']['code'] == 'replayed_nonce', (n, d)
    st, d = b.api('alice', 'GET', '/v1/requests', date=iso(t0 - 2))
    assert st == 401 and d['error']['code'] == 'signed_before_restart', d
    assert 'sign the request again' in d['error']['message'], d
    st, _ = b.api('alice', 'GET', '/v1/requests')
    assert st == 200


def test_visibility(ctx):
    b = ctx.broker().start()
    j = b.request()
    st, _ = b.api('bob', 'GET', '/v1/requests/' + j['id'])
    assert st == 404            # another requester sees nothing
    st, _ = b.api('carol', 'GET', '/v1/requests/' + j['id'])
    assert st == 200            # an approver of the profile sees it
    st, _ = b.api('erin', 'GET', '/v1/requests/' + j['id'])
    assert st == 200            # an auditor sees it
    st, d = b.api('bob', 'GET', '/v1/requests')
    assert d['requests'] == []


def test_audit_chain_verifies_and_detects_tampering(ctx):
    b = ctx.broker().start()
    j = b.request()
    b.approve(j['id'])
    b.stop()                                   # writes a signed checkpoint
    path = b.audit_file
    pub = open(os.path.join(b.state_dir, 'audit.pub')).read().strip()
    r = b.cli('erin', 'audit', 'verify', path, '--pubkey', pub)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'audit OK' in r.stdout, r.stdout
    lines = open(path).read().splitlines()
    assert len(lines) >= 5

    def check(mutated, name):
        p = os.path.join(b.tmp, name)
        with open(p, 'w') as f:
            f.write('\n'.join(mutated) + '\n')
        r = b.cli('erin', 'audit', 'verify', p, '--pubkey', pub)
        assert r.returncode != 0, (name, r.stdout)
    edited = list(lines)
    rec = json.loads(edited[2])
    rec['actor'] = 'mallory'
    edited[2] = json.dumps(rec, separators=(',', ':'), sort_keys=True)
    check(edited, 'edited.jsonl')
    check(lines[:2] + lines[3:], 'dropped.jsonl')
    check([lines[0], lines[2], lines[1]] + lines[3:], 'reordered.jsonl')
    check(lines[1:], 'head-cut.jsonl')
    # a forged checkpoint key: verify with another key fails
    other = b.users['alice'].pubkey
    r = b.cli('erin', 'audit', 'verify', path, '--pubkey', other)
    assert r.returncode != 0


def test_store_migrates_old_schema(ctx):
    """An older database (schema 1) is upgraded in place and keeps its requests."""
    harness.sqlite_only('a schema 1 SQLite file (test_store upgrades PostgreSQL)')
    b = ctx.broker()
    os.makedirs(b.state_dir, mode=0o700)
    db = sqlite3.connect(os.path.join(b.state_dir, 'elevate.db'))
    schema1 = open(os.path.join(os.path.dirname(__file__), 'schema_v1.sql')).read()
    db.executescript(schema1)
    now = int(time.time())
    db.execute("INSERT INTO requests (id, profile, requester, state, duration, reason, role_arn,"
               " region, created_at, pending_until, updated_at) VALUES ('req_oldoldoldold',"
               " 'dev', 'alice', 'pending', 600, 'old', 'arn:aws:iam::111122223333:role/Dev',"
               " 'ap-northeast-1', ?, ?, ?)", (now, now + 1800, now))
    db.execute('PRAGMA user_version = 1')
    db.commit()
    db.close()
    b.start()
    j = b.get('req_oldoldoldold')
    assert j['state'] == 'pending' and j['reason'] == 'old'
    db = sqlite3.connect(os.path.join(b.state_dir, 'elevate.db'))
    v = db.execute('PRAGMA user_version').fetchone()[0]
    db.close()
    assert v == schema_version(), v
    b.approve_until('req_oldoldoldold')


def schema_version():
    """The schema this build migrates to: STORE_SCHEMA_VERSION in include/elevate/store.h."""
    import re
    with open(os.path.join(harness.ROOT, 'include', 'elevate', 'store.h')) as f:
        return int(re.search(r'^#define STORE_SCHEMA_VERSION (\d+)', f.read(), re.M).group(1))


def test_elevated_check_reports_file_and_path(ctx):
    import subprocess
    import harness
    b = ctx.broker()
    r = subprocess.run([os.path.join(ctx.bin, 'elevated'), 'check', '--config', b.config_path],
                       capture_output=True, text=True)
    assert r.returncode == 0 and 'configuration OK' in r.stdout, r.stdout + r.stderr
    profiles = json.loads(json.dumps(harness.DEFAULT_PROFILES))
    profiles['dev']['max_duraton'] = '1h'                       # mistyped key
    profiles['prod-readonly']['approvers'] = ['group:sre-lead']  # unknown group
    b.profiles = profiles
    b.write_policy()
    cfg = json.load(open(b.config_path))
    cfg['smtp'] = {'ulr': 'smtp://x'}                            # mistyped config key
    json.dump(cfg, open(b.config_path, 'w'))
    r = subprocess.run([os.path.join(ctx.bin, 'elevated'), 'check', '--config', b.config_path],
                       capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    pol = os.path.join(b.policy_dir, 'policy.json')
    assert pol in out and '$.profiles.dev.max_duraton' in out, out
    assert '$.profiles.prod-readonly.approvers[0]' in out and 'sre-lead' in out, out
    assert b.config_path in out and '$.smtp.ulr' in out, out
    # the daemon refuses to start on the same files
    b.start(wait=False)
    assert b.proc.wait(10) != 0


def test_https_listener(ctx):
    """With tls configured the broker speaks HTTPS (libmicrohttpd + GnuTLS); the CLI
    verifies the certificate (ELEVATE_CA_FILE for a private CA)."""
    import http.client
    import ssl
    import subprocess
    import urllib.error
    import urllib.request
    b = ctx.broker()
    crt, key = os.path.join(b.tmp, 'tls.crt'), os.path.join(b.tmp, 'tls.key')
    r = subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                        'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj',
                        '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
                        '-keyout', key, '-out', crt], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    os.chmod(key, 0o600)
    b.config['tls'] = {'cert': crt, 'key': key}
    https = b.url.replace('http://', 'https://')
    b.config['public_url'] = https
    b.write_config()
    b.url = https
    b.proc = subprocess.Popen([os.path.join(ctx.bin, 'elevated'), '--config', b.config_path],
                              env=b.env(), stdout=open(os.path.join(b.tmp, 'elevated.log'), 'a'),
                              stderr=subprocess.STDOUT)
    cafile = ssl.create_default_context(cafile=crt)
    wait_for(lambda: _https_ok(https + '/healthz', cafile), 20, what='https healthz')
    # plain HTTP to the TLS port gets nowhere: the listener hangs up without an HTTP answer
    # (http.client.RemoteDisconnected here; a reset or a TLS alert read as a status line
    # would do too)
    try:
        urllib.request.urlopen(https.replace('https://', 'http://') + '/healthz', timeout=3)
    except urllib.error.HTTPError as e:
        raise AssertionError('plain HTTP got an HTTP %d on the TLS port' % e.code)
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError):
        pass
    else:
        raise AssertionError('plain HTTP answered on the TLS port')
    env = {'ELEVATE_SERVER': https, 'ELEVATE_CA_FILE': crt}
    r = b.cli('alice', 'request', 'dev', '--for', '5m', '--reason', 'tls', env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    # without the CA the CLI refuses the unknown certificate
    r = b.cli('alice', 'list', env={'ELEVATE_SERVER': https})
    assert r.returncode != 0


def _https_ok(url, context):
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as r:
            return r.status == 200
    except Exception:
        return False


def test_audit_api_for_auditors_only(ctx):
    b = ctx.broker().start()
    j = b.request()
    b.approve_until(j['id'])
    r = b.cli('erin', '--json', 'audit', 'show', '--since', '1h', '--event', 'grant.activated')
    assert r.returncode == 0, r.stderr
    recs = json.loads(r.stdout)['records']
    assert [x['request_id'] for x in recs] == [j['id']], recs
    assert all(x['hash'] and x['prev_hash'] for x in recs)
    r = b.cli('erin', 'audit', 'show', '--user', 'carol')
    assert r.returncode == 0 and 'request.approval' in r.stdout, r.stdout
    r = b.cli('alice', 'audit', 'show')
    assert r.returncode == 3 and 'not an auditor' in r.stderr, (r.returncode, r.stderr)
    st, d = b.api('erin', 'GET', '/v1/audit?limit=abc')
    assert st == 400, d


def test_readme_config_reference_matches_the_daemon(ctx):
    """The README's configuration table is the daemon's own key table, not a copy that
    can drift: `elevated config-reference` must print exactly what the README shows."""
    import subprocess
    r = subprocess.run([os.path.join(ctx.bin, 'elevated'), 'config-reference'],
                       capture_output=True, text=True)
    assert r.returncode == 0
    readme = open(os.path.join(ctx.root, 'README.md')).read()
    assert r.stdout.strip() in readme, 'README.md: refresh the table from elevated config-reference'
