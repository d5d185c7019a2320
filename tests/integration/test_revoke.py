"""Issue 5: the end of the window and early revocation, against the emulator: sessions
terminated, credentials denied, batched per role, crash-safe, throttling-proof."""
import json
import time
import urllib.request

from harness import parse_iso, wait_for, ACCOUNT
from test_aws import _describe


def _grant(b, user='alice', profile='prod-readonly', duration='5m', approver='carol'):
    j = b.request(user=user, profile=profile, duration=duration,
                  ticket='INC-1' if profile == 'prod-readonly' else None)
    st, d = b.approve(j['id'], approver)
    assert st == 200 and d['state'] == 'active', (st, d)
    return d


def _session(b, rid, user='alice', target='i-0123456789abcdef0'):
    st, d = b.api(user, 'POST', '/v1/requests/%s/sessions' % rid, {'target': target})
    assert st == 201, (st, d)
    return d['SessionId']


def _emu_sessions(emu):
    return {s['SessionId']: s for s in emu.state()['sessions']}


def _creds(b, rid, user='alice'):
    return b.cli_json(user, 'creds', rid)


def _calls(emu, since, action=None, service=None):
    return [e for e in emu.log_entries(since)
            if (action is None or e['action'] == action) and
            (service is None or e['service'] == service)]


def test_window_end_terminates_sessions_and_denies(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    d = _grant(b, duration='5s')
    creds = _creds(b, d['id'])
    s1 = _session(b, d['id'])
    s2 = _session(b, d['id'])
    assert _emu_sessions(emu)[s1]['Status'] == 'Connected' or _emu_sessions(emu)[s1].get('Status')
    end = parse_iso(d['window_end'])
    since = emu.last_seq()
    wait_for(lambda: b.get(d['id'])['state'] == 'ended', 15, what='ended')
    terms = _calls(emu, since, 'TerminateSession')
    ids = {t['params']['SessionId'] for t in terms}
    assert {s1, s2} <= ids, (ids, s1, s2)
    # within a bound loose enough for a busy CI machine; the 1 s promise is the benchmark's
    for t in terms:
        assert end <= t['time'] <= end + 5, (t['time'] - end)
        assert t['principal'] == 'broker'        # the grant's credentials are dead by then
    st = _emu_sessions(emu)
    assert st[s1]['Status'] == 'Terminated' and st[s2]['Status'] == 'Terminated'
    assert _describe(emu, creds) == 'UnauthorizedOperation'
    ended = [a for a in b.audit(d['id']) if a['event'] == 'grant.ended'][0]
    got = {x['session_id'] for x in ended['data']['terminated_sessions']}
    assert got == {s1, s2}, ended
    assert all(x['aws_request_id'] for x in ended['data']['terminated_sessions'])
    # no IAM change was needed at a natural end
    assert not _calls(emu, since, service='iam')


def test_session_started_outside_broker_is_found(ctx):
    """A session opened directly with the grant's credentials (not recorded) is found by
    DescribeSessions (Owner = the grant's role session) and terminated too."""
    emu = ctx.emulator
    b = ctx.broker().start()
    d = _grant(b, duration='4s')
    creds = _creds(b, d['id'])
    import botocore.session
    ssm = botocore.session.get_session().create_client(
        'ssm', region_name='ap-northeast-1', endpoint_url=emu.url,
        aws_access_key_id=creds['AccessKeyId'], aws_secret_access_key=creds['SecretAccessKey'],
        aws_session_token=creds['SessionToken'])
    sid = ssm.start_session(Target='i-0123456789abcdef0')['SessionId']
    wait_for(lambda: b.get(d['id'])['state'] == 'ended', 15, what='ended')
    assert _emu_sessions(emu)[sid]['Status'] == 'Terminated'


def test_early_revoke_spares_other_grant_of_same_role(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    a = _grant(b, user='alice')
    o = _grant(b, user='bob')
    ca, co = _creds(b, a['id']), _creds(b, o['id'], 'bob')
    assert _describe(emu, ca) == 'ok' and _describe(emu, co) == 'ok'
    since = emu.last_seq()
    r = b.cli('alice', 'revoke', a['id'], '--reason', 'done early')
    assert r.returncode == 0, r.stdout + r.stderr
    assert b.get(a['id'])['state'] == 'ended'
    puts = _calls(emu, since, 'PutRolePolicy')
    assert len(puts) == 1 and puts[0]['params']['RoleName'] == 'ProdReadOnly', puts
    doc = json.loads(puts[0]['params']['PolicyDocument'])
    assert doc['Statement'][0]['Effect'] == 'Deny'
    # named by the session tag every grant's credentials carry
    assert doc['Statement'][0]['Condition']['StringEquals'] == {
        'aws:PrincipalTag/elevate:request-id': [a['id']]}, doc
    assert o['id'] not in json.dumps(doc)
    assert _describe(emu, ca) == 'UnauthorizedOperation'    # before its window ends
    assert _describe(emu, co) == 'ok'                       # the other grant still works
    ev = b.events(a['id'])
    assert 'grant.revoke_requested' in ev and 'grant.ended' in ev
    # revoke rights: bob may not revoke alice's grant, an approver may, an admin may
    a2 = _grant(b, user='alice')
    r = b.cli('bob', 'revoke', a2['id'])
    assert r.returncode != 0
    st, d = b.api('frank', 'POST', '/v1/requests/%s/revoke' % a2['id'], {})
    assert st == 200 and d['state'] == 'ended', (st, d)


def test_fifty_grants_one_policy_update(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    ids = [_grant(b, user=('alice', 'bob')[i % 2])['id'] for i in range(50)]
    since = emu.last_seq()
    st, d = b.api('frank', 'POST', '/v1/revoke', {'ids': ids, 'reason': 'incident'})
    assert st == 200, (st, d)
    assert all(r['state'] == 'ended' for r in d['requests']), [r['state'] for r in d['requests']]
    puts = _calls(emu, since, 'PutRolePolicy')
    assert len(puts) == 1, len(puts)
    # all 50 were minted into the role's open cohort: it is closed and denied as a whole,
    # no grant of it being live
    doc = json.loads(puts[0]['params']['PolicyDocument'])
    assert [s['Sid'] for s in doc['Statement']] == ['ElevateRevokedCohorts'], doc
    assert len(json.dumps(doc)) < 300, doc
    assert all(emu.session_denied(request_id=i) for i in ids)


def _policy_sizes(emu, since, role):
    """The revocation policies put on role since seq: (sizes as IAM counts them, the puts
    that failed)."""
    puts = [p for p in _calls(emu, since, 'PutRolePolicy') if p['params']['RoleName'] == role]
    bad = [(p['status'], p.get('error_code'), p.get('error_message')) for p in puts
           if p['status'] != 200]
    return [len(''.join(p['params']['PolicyDocument'].split())) for p in puts], bad


def _metric(b, name):
    m = urllib.request.urlopen(b.url + '/metrics').read().decode()
    return int([l for l in m.splitlines() if l.startswith(name + ' ')][0].split()[-1])


def test_thousand_revocations_stay_under_budget(ctx):
    """1,000 grants of one role revoked back to back, as fast as the broker answers, with
    windows long enough that every revoked session is still alive at the end: all 1,000
    stay denied at once, within IAM's 10,240 characters (named one by one they would need
    about 19,000 by request id, 55,000 by aws:userid)."""
    emu = ctx.emulator
    b = ctx.broker().start()
    live = [_grant(b, profile='dev', duration='30m')['id'] for _ in range(3)]
    since = emu.last_seq()
    n = 1000
    ids = []
    t0 = time.monotonic()
    for i in range(n):
        user = ('alice', 'bob')[i % 2]
        j = b.request(user=user, profile='dev', duration='10m', ticket=None)
        st, d = b.approve(j['id'], 'carol')
        assert st == 200 and d['state'] == 'active', d
        st, d = b.api(user, 'POST', '/v1/requests/%s/revoke' % j['id'], {})
        assert st == 200 and d['state'] == 'ended', (i, st, d)
        ids.append(j['id'])
    took = time.monotonic() - t0
    sizes, bad = _policy_sizes(emu, since, 'Dev')
    assert not bad, bad[:5]
    assert len(sizes) >= n // 2, len(sizes)        # one put per revoke, or a few batched
    assert max(sizes) <= 10240, max(sizes)
    assert _metric(b, 'elevate_revocation_policy_chars_max') == max(sizes)
    assert not [a for a in b.audit() if a['event'] == 'revocation.failed']
    # every revoked session is denied now, all 1,000 at once; the live grants work
    keys = emu.keys_by_request()
    assert sum(len(keys.get(i, [])) for i in ids) == n
    assert all(emu.decision(k) == 'explicit_deny' for i in ids for k in keys[i])
    for i in live:
        assert [emu.decision(k) for k in keys[i]] == ['allow'], i
    print('     %d revocations in %.1f s; biggest deny policy %d characters, last %d'
          % (n, took, max(sizes), sizes[-1]))


def test_burst_of_400_revocations_on_one_role(ctx):
    """420 grants of one role, all minted into one cohort, then 400 of them revoked at once
    by 8 clients, while a 421st is being minted (its AssumeRole held): no policy is
    refused, every revoked credential is refused by AWS, and the 20 left, and the one
    minted during the burst, keep working."""
    from concurrent.futures import ThreadPoolExecutor
    from test_races import Bg
    emu = ctx.emulator
    b = ctx.broker().start()
    grants = [_grant(b, user=('alice', 'bob')[i % 2], profile='dev', duration='30m')
              for i in range(420)]
    keep = [g for i, g in enumerate(grants) if i % 21 == 0]
    gone = [g for i, g in enumerate(grants) if i % 21 != 0]
    assert len(gone) == 400 and len(keep) == 20
    # credentials handed out before the burst, to try with signed calls afterwards
    held_creds = {g['id']: _creds(b, g['id'], g['requester'])
                  for g in gone[:3] + gone[-3:] + keep[:3]}
    # a grant of the same cohort still being minted while the burst sweeps it
    j = b.request(user='alice', profile='dev', duration='30m', ticket=None)
    emu.hold('AssumeRole')
    minting = Bg(b.approve, j['id'], 'carol')
    emu.wait_held(1, timeout=15)
    since = emu.last_seq()
    t0 = time.monotonic()

    def revoke(g):
        return b.api(g['requester'], 'POST', '/v1/requests/%s/revoke' % g['id'], {})
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(revoke, gone))
    took = time.monotonic() - t0
    assert all(st == 200 and d['state'] == 'ended' for st, d in answers), \
        [(st, d.get('state') if isinstance(d, dict) else d) for st, d in answers
         if st != 200 or d['state'] != 'ended'][:5]
    sizes, bad = _policy_sizes(emu, since, 'Dev')
    assert not bad, bad[:5]
    assert sizes and max(sizes) <= 10240, sizes
    emu.release()
    st, m = minting.get()
    assert st == 200 and m['state'] == 'active', (st, m)
    # the policy the burst left, put while it was being minted, lets it work
    assert [emu.decision(k) for k in emu.keys_of(request_id=m['id'])] == ['allow']
    held_creds[m['id']] = _creds(b, m['id'], m['requester'])
    # one more revocation: the policy is built again with that grant active
    extra = _grant(b, profile='dev', duration='30m')
    st, d = b.api('alice', 'POST', '/v1/requests/%s/revoke' % extra['id'], {})
    assert st == 200 and d['state'] == 'ended', d
    last = json.loads(_calls(emu, since, 'PutRolePolicy')[-1]['params']['PolicyDocument'])
    assert [s['Sid'] for s in last['Statement']][-1] == 'ElevateRevokedCohorts', last
    assert not [a for a in b.audit() if a['event'] == 'revocation.failed']
    keys = emu.keys_by_request()
    for g in gone + [extra]:
        assert keys.get(g['id']) and all(emu.decision(k) == 'explicit_deny'
                                         for k in keys[g['id']]), g['id']
    for g in keep + [m]:
        assert [emu.decision(k) for k in keys[g['id']]] == ['allow'], g['id']
    # and the credentials themselves, in signed calls to AWS
    for g in gone[:3] + gone[-3:]:
        assert _describe(emu, held_creds[g['id']]) == 'UnauthorizedOperation', g['id']
    for g in keep[:3] + [m]:
        assert _describe(emu, held_creds[g['id']]) == 'ok', g['id']
    print('     400 revocations by 8 clients in %.1f s: %d policy updates, biggest %d '
          'characters' % (took, len(sizes), max(sizes)))


def test_budget_overflow_fails_loudly(ctx):
    emu = ctx.emulator
    emu.control('POST', 'roles', {'name': 'Tiny', 'max_session_duration': 3600,
                                  'trust': ['broker'], 'inline_policy_limit': 200})
    import harness
    profiles = json.loads(json.dumps(harness.DEFAULT_PROFILES))
    profiles['tiny'] = dict(profiles['dev'], role_arn='arn:aws:iam::%s:role/Tiny' % ACCOUNT)
    b = ctx.broker(profiles=profiles).start()
    d = _grant(b, profile='tiny')
    st, r = b.api('alice', 'POST', '/v1/requests/%s/revoke' % d['id'], {})
    assert st == 200 and r['state'] == 'ending', r       # not dropped: still being revoked
    assert r['revocation']['attempts'] >= 1
    ev = [a for a in b.audit() if a['event'] == 'revocation.failed']
    assert ev and 'Tiny' in ev[0]['data']['role'], ev
    m = urllib.request.urlopen(b.url + '/metrics').read().decode()
    assert 'elevate_revocation_failures_total' in m
    line = [l for l in m.splitlines() if l.startswith('elevate_revocation_failures_total')][0]
    assert int(line.split()[-1]) >= 1


def test_throttling_every_revocation_completes(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    grants = [_grant(b, user=('alice', 'bob')[i % 2], duration='4s') for i in range(6)]
    for g in grants[:3]:
        _session(b, g['id'], user=g['requester'])
    early = grants[3:]
    emu.faults(throttle_rate=0.3, seed=11)
    for g in early:
        st, d = b.api(g['requester'], 'POST', '/v1/requests/%s/revoke' % g['id'], {})
        assert st == 200, d
    for g in grants:
        wait_for(lambda: b.get(g['id'], g['requester'])['state'] == 'ended', 40,
                 what='revocation of %s under throttling' % g['id'])
    emu.faults()
    throttled = [e for e in emu.log_entries() if e.get('error_code') == 'Throttling' or
                 e.get('error_code') == 'ThrottlingException']
    assert throttled, 'the emulator throttled nothing: the test proves nothing'


def test_kill9_before_window_end_resumes_at_startup(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    d = _grant(b, duration='3s')
    sid = _session(b, d['id'])
    end = parse_iso(d['window_end'])
    time.sleep(max(0, end - 1 - time.time()))
    b.kill9()
    time.sleep(max(0, end + 5 - time.time()))
    assert _emu_sessions(emu)[sid]['Status'] != 'Terminated'
    since = emu.last_seq()
    t0 = time.time()
    b.start()
    # before serving, the daemon resumed the overdue grant: by the time /healthz answers
    # the session is terminated
    assert _emu_sessions(emu)[sid]['Status'] == 'Terminated'
    terms = _calls(emu, since, 'TerminateSession')
    assert terms and terms[0]['time'] <= time.time() and terms[0]['time'] >= t0 - 1
    assert b.get(d['id'])['state'] == 'ended'
    ev = b.events(d['id'])
    assert ev.index('grant.window_ended') < ev.index('grant.ended')
    started = [a['seq'] for a in b.audit() if a['event'] == 'daemon.started']
    ended = [a['seq'] for a in b.audit(d['id']) if a['event'] == 'grant.ended']
    assert ended[0] > started[-1]


def test_metrics(ctx):
    b = ctx.broker().start()
    _grant(b)
    m = urllib.request.urlopen(b.url + '/metrics').read().decode()
    assert 'elevate_requests{state="active"} 1' in m, m[:500]
    assert 'elevate_aws_call_duration_seconds_count{service="sts",action="AssumeRole",outcome="ok"}' in m
    assert 'elevate_revocation_lag_seconds_bucket' in m
    assert 'elevate_outbox{state="queued"}' in m
    assert 'elevate_revocations_overdue 0' in m


def test_metrics_counts_overdue_revocations(ctx):
    """A grant past its window end whose revocation AWS holds up is overdue in /metrics;
    a grant still in its window is not; once the revocation ends, nothing is overdue."""
    emu = ctx.emulator
    b = ctx.broker().start()

    def overdue():
        m = urllib.request.urlopen(b.url + '/metrics').read().decode()
        return int([l for l in m.splitlines()
                    if l.startswith('elevate_revocations_overdue ')][0].split()[-1])
    d = _grant(b, duration='2s')
    _grant(b, user='bob', duration='5m')
    emu.hold('DescribeSessions')
    try:
        emu.wait_held(1, timeout=15)       # the window end's sweep, held at AWS
        assert b.get(d['id'])['state'] == 'ending'
        wait_for(lambda: overdue() == 1, 10, what='the held revocation counted overdue')
    finally:
        emu.release()
    wait_for(lambda: b.get(d['id'])['state'] == 'ended', 15, what='the revocation')
    assert overdue() == 0

