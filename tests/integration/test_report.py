"""Issue 10 parts 8 and 9: the access review (elevate report, GET /v1/report) over grants
ended every way, in its three formats, refused to non-auditors; revocation receipts
(grant.revocation_verified) after a window's end and after an admin's revoke; an
unusable revocation_probe refused at policy load."""
import csv
import io
import json
import os
import subprocess

import harness
from harness import wait_for

FORMULA_REASON = '=HYPERLINK("http://x"), "quoted"'


def _profiles():
    p = json.loads(json.dumps(harness.DEFAULT_PROFILES))
    p['prod-readonly']['revocation_probe'] = 'ec2:DescribeRegions'
    p['ghost'] = {'role_arn': 'arn:aws:iam::%s:role/NoSuchRole' % harness.ACCOUNT,
                  'region': 'ap-northeast-1', 'requesters': ['group:engineers'],
                  'approvers': ['group:sre-leads'], 'reason_required': True}
    return p


def _event(b, rid, name):
    got = [r for r in b.audit(rid) if r['event'] == name]
    return got[-1] if got else None


def _setup(ctx):
    """Four requests: one expires at its window end (with creds fetched and an SSM
    session), one revoked early by an admin, one that fails to activate, one cancelled."""
    b = ctx.broker(profiles=_profiles()).start()
    exp = b.request(duration='5s')
    b.approve_until(exp['id'], comment='ok, go')
    b.cli_json('alice', 'creds', exp['id'])
    st, s = b.api('alice', 'POST', '/v1/requests/%s/sessions' % exp['id'],
                  {'target': 'i-0123456789abcdef0'})
    assert st == 201, (st, s)
    rev = b.request(duration='15m', reason=FORMULA_REASON)
    b.approve_until(rev['id'])
    st, d = b.api('frank', 'POST', '/v1/requests/%s/revoke' % rev['id'],
                  {'reason': 'done, early'})
    assert st == 200, (st, d)
    fail = b.request(profile='ghost', ticket=None)
    b.approve_until(fail['id'], 'failed')
    can = b.request()
    st, d = b.api('alice', 'POST', '/v1/requests/%s/cancel' % can['id'], {})
    assert st == 200, (st, d)
    wait_for(lambda: b.get(exp['id'])['state'] == 'ended', 20, what='expired grant ended')
    for rid in (exp['id'], rev['id']):
        wait_for(lambda: _event(b, rid, 'grant.revocation_verified') is not None or
                 _event(b, rid, 'grant.revocation_unverified') is not None, 30,
                 what='a revocation receipt for %s' % rid)
    return b, exp['id'], rev['id'], fail['id'], s['SessionId']


def test_report_three_formats_and_receipts(ctx):
    b, exp, rev, fail, sid = _setup(ctx)

    # revocation receipts: measured from the window end / the revoke request
    v = _event(b, exp, 'grant.revocation_verified')
    assert v is not None, b.audit(exp)
    assert v['data']['from'] == 'window_end' and v['data']['action'] == 'ec2:DescribeRegions'
    assert 0 <= v['data']['seconds'] < 30 and v['data']['code'] == 'UnauthorizedOperation', v
    r = _event(b, rev, 'grant.revocation_verified')
    assert r is not None, b.audit(rev)
    assert r['data']['from'] == 'revoke_requested' and 0 <= r['data']['seconds'] < 30, r
    # the probe used the grant's own credentials, and AWS refused them
    probes = [e for e in ctx.emulator.log_entries(0) if e['action'] == 'DescribeRegions']
    assert probes and all(e['principal'] != 'broker' for e in probes), probes
    assert any(e['status'] == 403 for e in probes), probes
    # the credential fetch is audited with its source address, never a secret
    f = _event(b, exp, 'grant.credentials_fetched')
    assert f['data']['peer'] == '127.0.0.1' and f['data']['access_key_id'], f
    assert set(f['data']) == {'peer', 'access_key_id'}, f

    # --json: one document
    doc = b.cli_json('erin', 'report', '--since', '1h')
    g = {x['id']: x for x in doc['grants']}
    assert set(g) == {exp, rev, fail}, g.keys()
    assert doc['summary']['not_granted'] == {'cancelled': 1}, doc['summary']
    assert doc['summary']['grants'] == 3 and doc['summary']['expired'] == 1
    assert doc['summary']['revoked'] == 1 and doc['summary']['failed'] == 1
    e = g[exp]
    assert e['requester'] == 'alice' and e['profile'] == 'prod-readonly'
    assert e['role_arn'].endswith(':role/ProdReadOnly') and e['ticket'] == 'INC-1'
    assert e['asked_seconds'] == 5 and e['served_seconds'] == 5, e
    assert [(a['approver'], a['comment']) for a in e['approvals']] == [('carol', 'ok, go')]
    assert e['end']['how'] == 'expired' and e['revocation']['overdue'] is False, e
    assert [(s['session_id'], s['instance']) for s in e['sessions']] == \
        [(sid, 'i-0123456789abcdef0')] and e['sessions'][0]['ended_at'], e['sessions']
    assert [(c['user'], c['peer']) for c in e['credential_fetches']] == [('alice', '127.0.0.1')]
    assert e['receipt']['verified'] is True and e['receipt']['from'] == 'window_end'
    x = g[rev]
    assert x['end']['how'] == 'revoked' and x['end']['by'] == 'frank', x['end']
    assert x['end']['reason'] == 'done, early' and x['reason'] == FORMULA_REASON
    assert x['served_seconds'] < 60 and x['asked_seconds'] == 900, x
    assert x['revocation']['overdue'] is False and x['receipt']['verified'] is True, x
    y = g[fail]
    assert y['end']['how'] == 'failed' and y['end']['code'], y['end']
    assert y['revocation'] is None and y['receipt'] is None, y

    # --csv: RFC 4180, a header row, formulas neutralised
    out = b.cli('erin', 'report', '--since', '1h', '--csv')
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout, newline='')))
    c = {row['id']: row for row in rows}
    assert set(c) == {exp, rev, fail}, c.keys()
    assert c[rev]['reason'] == "'" + FORMULA_REASON, c[rev]['reason']
    assert c[rev]['ended'] == 'revoked' and c[rev]['revoked_by'] == 'frank'
    assert c[rev]['revoke_reason'] == 'done, early' and c[rev]['overdue'] == 'no'
    assert c[exp]['ended'] == 'expired' and c[exp]['receipt'] == 'verified'
    assert sid in c[exp]['ssm_sessions'] and '127.0.0.1' in c[exp]['credential_fetches']
    assert 'carol approved' in c[exp]['approvals'] and 'ok, go' in c[exp]['approvals']
    assert c[fail]['ended'] == 'failed' and c[fail]['failure']
    for row in rows:
        for k, val in row.items():
            assert not (val and val[0] in '=+@' ), (k, val)

    # the default table
    out = b.cli('erin', 'report', '--since', '1h')
    assert out.returncode == 0, out.stderr
    assert '3 grants, 1 expired, 1 revoked, 1 failed, 0 overdue' in out.stdout, out.stdout
    assert 'revoked by frank' in out.stdout and 'not granted: cancelled 1' in out.stdout
    for rid in (exp, rev, fail):
        assert rid in out.stdout

    # bounded: too many requests for the limit is a refusal that says so
    out = b.cli('erin', 'report', '--since', '1h', '--limit', '2')
    assert out.returncode != 0 and 'more than 2 requests' in out.stderr, out.stderr
    st, j = b.api('erin', 'GET', '/v1/report?since=2020-01-01T00:00:00Z')
    assert st == 400 and '366 days' in j['error']['message'], (st, j)


def test_report_refused_to_non_auditors(ctx):
    b = ctx.broker().start()
    st, j = b.api('alice', 'GET', '/v1/report?since=30d')
    assert st == 403 and 'not an auditor' in j['error']['message'], (st, j)
    ref = [r for r in b.audit() if r['event'] == 'authz.refused']
    assert ref and ref[-1]['actor'] == 'alice' and ref[-1]['data']['action'] == 'report.read', ref
    out = b.cli('frank', 'report', '--since', '30d')
    assert out.returncode != 0 and 'not an auditor' in out.stderr, out.stderr


def test_unsupported_probe_refused_at_policy_load(ctx):
    b = ctx.broker()
    for probe, words in (('sts:GetCallerIdentity', 'never denied by IAM policies'),
                         ('s3:ListBuckets', 'not a supported revocation probe')):
        p = _profiles()
        p['prod-readonly']['revocation_probe'] = probe
        b.profiles = p
        b.write_policy()
        r = subprocess.run([os.path.join(ctx.bin, 'elevated'), 'check', '--config',
                            b.config_path], capture_output=True, text=True)
        out = r.stdout + r.stderr
        assert r.returncode == 1, out
        assert '$.profiles.prod-readonly.revocation_probe' in out and words in out, out


def test_probe_interrupted_by_a_crash_resumes_at_start(ctx):
    """The broker dies (SIGKILL) while its revocation probe is in flight (the emulator
    holds the call): the next start proves the grant again, and it gets one receipt."""
    emu = ctx.emulator
    b = ctx.broker(profiles=_profiles()).start()
    emu.hold('DescribeRegions', service='ec2')
    g = b.request(duration='3s')
    b.approve_until(g['id'], ('active', 'ending', 'ended'))
    emu.wait_held(1, timeout=20)       # the window ended; the probe waits on AWS
    assert _event(b, g['id'], 'grant.revocation_verified') is None
    b.kill9()
    emu.release()
    b.start()
    wait_for(lambda: _event(b, g['id'], 'grant.revocation_verified') is not None, 30,
             what='the receipt after the restart')
    receipts = [r for r in b.audit(g['id'])
                if r['event'] in ('grant.revocation_verified', 'grant.revocation_unverified')]
    assert len(receipts) == 1, receipts
    assert receipts[0]['data']['from'] == 'window_end'
    assert 'resuming its revocation probe' in b.logtext()
