"""Several elevated nodes on one PostgreSQL database (issue 12): any node serves any call,
and what one node knows (requests, nonces) every node knows."""
import base64
import json
import os
import threading
import time

from harness import iso, parse_iso, wait_for


def test_two_nodes_share_requests_and_nonces(ctx):
    """A request created through node A is read through node B; a signed call sent to A
    and replayed, byte for byte, to B is refused as a replay."""
    a, b = ctx.nodes(2)
    a.start()
    b.start()
    rid = a.request(reason='two nodes')['id']
    assert b.get(rid)['reason'] == 'two nodes'
    date = iso(time.time())
    nonce = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip('=')
    st, j = a.api('alice', 'GET', '/v1/requests/' + rid, date=date, nonce=nonce)
    assert st == 200, j
    st, j = b.api('alice', 'GET', '/v1/requests/' + rid, date=date, nonce=nonce)
    assert st == 401 and j['error']['code'] == 'replayed_nonce', (st, j)


# ---- due work across nodes: leases, wake-ups, failover ----

def _audit_pub(n):
    return open(os.path.join(n.state_dir, 'audit.pub')).read().strip()


def _rec_ms(r):
    """An audit record's time (ms precision) in seconds since the epoch."""
    return parse_iso(r['time']) + int(r['time'][20:23]) / 1000.0


def test_approval_link_served_by_another_node(ctx):
    """A request created through node A is approved by the link of its approval mail opened
    on node B (the page's POST); the grant's credentials are then fetched from A with
    `elevate creds`: they are the ones the emulator issued for it. Revoked through B, it
    answers `ended` and the role session is denied."""
    import tempfile
    import urllib.parse
    import urllib.request

    from harness import mail_links, wait_mail

    smtp = ctx.smtp(tempfile.mkdtemp(prefix='elevate-it-smtp-')).start()
    a, b = ctx.nodes(2, smtp_port=smtp.port)
    a.start()
    b.start()
    rid = a.request(reason='link on another node')['id']
    msgs = wait_mail(smtp, 1, pred=lambda m: m['rcpt'] == ['carol@example.com'] and
                     rid in m['msg'].get_body(('plain',)).get_content())
    text, _ = mail_links(msgs[0]['msg'])
    assert text and text[0].startswith(a.url + '/approve/'), text
    link = b.url + text[0][len(a.url):]          # the balancer sent carol to B
    with urllib.request.urlopen(link, timeout=15) as r:
        page = r.read().decode()
    assert r.status == 200 and rid in page and '<form method="post"' in page, page[:500]
    form = urllib.parse.urlencode({'decision': 'approve'}).encode()
    req = urllib.request.Request(link, data=form, method='POST', headers={
        'Content-Type': 'application/x-www-form-urlencoded'})
    with urllib.request.urlopen(req, timeout=15) as r:
        page = r.read().decode()
    assert r.status == 200 and 'Approved' in page, page[:800]
    j = a.wait_state(rid, 'active')
    assert [x['approver'] for x in j['approvals']] == ['carol'], j['approvals']
    assert [x['via'] for x in j['approvals']] == ['email'], j['approvals']
    r = a.cli('alice', 'creds', rid)
    assert r.returncode == 0, r.stderr
    creds = json.loads(r.stdout)
    assert creds['AccessKeyId'] in ctx.emulator.keys_of(request_id=rid), creds
    # a revoke through B answers once the grant has ended, whichever node's reaper ended it
    st, j = b.api('alice', 'POST', '/v1/requests/%s/revoke' % rid, {})
    assert st == 200 and j['state'] == 'ended', (st, j)
    assert ctx.emulator.session_denied(request_id=rid)


def grants_ending_soon(a, n=100, sessions_every=10):
    """n grants created and approved through node a (8 approvals at a time), their windows
    ending 6-10 s after their approval, every sessions_every-th with an open SSM session
    (bench/failover.py runs this too). Returns ({id: window end}, {id: session id}); fails
    when the setup took so long that a window already ends within a second."""
    ids, sessions, errors = [], {}, []
    for i in range(n):
        ids.append(a.request(user=('alice', 'bob')[i % 2], duration=6 + i % 5,
                             reason='failover %d' % i)['id'])
    t0 = time.time()

    def approve(k):
        for rid in ids[k::8]:
            st, d = a.approve(rid)
            if st != 200 or d['state'] != 'activating':
                errors.append((rid, st, d))
    threads = [threading.Thread(target=approve, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    grants = {rid: a.wait_state(rid, 'active') for rid in ids}
    for rid in ids[::sessions_every]:
        st, s = a.api(grants[rid]['requester'], 'POST', '/v1/requests/%s/sessions' % rid,
                      {'target': 'i-0123456789abcdef0'})
        assert st == 201, (st, s)
        sessions[rid] = s['SessionId']
    ends = {rid: parse_iso(g['window_end']) for rid, g in grants.items()}
    assert min(ends.values()) > time.time() + 1, \
        'setup took %.1fs: windows end before A is killed' % (time.time() - t0)
    return ends, sessions


def ended_late(b, ends):
    """Waits until every grant of ends ({id: window end}) is ended in b's store; returns
    {id: its grant.ended record} and {id: seconds from window end to that record}."""
    def all_ended():
        rows = b.query("SELECT COUNT(*) FROM requests WHERE state = 'ended'")
        return rows[0][0] >= len(ends)
    wait_for(all_ended, max(ends.values()) - time.time() + 30, what='every grant ended')
    recs = {r['request_id']: r for r in b.audit() if r['event'] == 'grant.ended'}
    return recs, {rid: _rec_ms(recs[rid]) - end for rid, end in ends.items()}


def test_killed_node_grants_end_on_the_other(ctx):
    """100 grants approved through node A, their windows ending 6-10 s after the
    approvals, one in ten with an open SSM session; A is killed (SIGKILL) before any
    ends. Node B ends every one of them: each grant.ended names node-b, every session is
    terminated, the credentials are past their session policy's end, and the chain
    verifies with both nodes' keys. (How late, to the millisecond, is make
    bench-failover's: here only a bound loose enough for a loaded machine.)"""
    emu = ctx.emulator
    a, b = ctx.nodes(2)
    a.start()
    b.start()
    ends, sessions = grants_ending_soon(a)
    a.kill9()
    killed = time.time()
    assert max(ends.values()) - killed <= 11, max(ends.values()) - killed
    recs, late = ended_late(b, ends)
    for rid in ends:
        assert recs[rid]['data']['node'] == 'node-b', recs[rid]
        assert recs[rid]['data']['early'] is False, recs[rid]
    v = sorted(late.values())
    print('     A killed %.1fs before the first window end; B ended 100 grants: lateness '
          'p50 %.0f ms, max %.0f ms' % (min(ends.values()) - killed, v[50] * 1000,
                                        v[-1] * 1000))
    assert 0 <= v[0] and v[-1] < 10, v           # the 3 s promise is the benchmark's
    st = {s['SessionId']: s['Status'] for s in emu.state()['sessions']}
    assert all(st[sid] == 'Terminated' for sid in sessions.values()), st
    for rid, sid in sessions.items():
        got = [x['session_id'] for x in recs[rid]['data']['terminated_sessions']]
        assert got == [sid], (rid, recs[rid]['data'])
    for rid in list(ends)[::25]:
        for key in emu.keys_of(request_id=rid):
            assert emu.decision(key) in ('implicit_deny', 'expired'), (rid, key)
    b.stop()
    r = b.cli('erin', 'audit', 'verify', b.audit_file, '--pubkey', _audit_pub(a),
              '--pubkey', _audit_pub(b))
    assert r.returncode == 0 and 'audit OK' in r.stdout, r.stdout + r.stderr


def test_live_lease_is_not_taken_over(ctx):
    """Node A mints a grant (its AssumeRole held open by the emulator) when node B starts:
    B leaves the activation alone while A renews its lease, well past the lease's length;
    A is killed, and B takes the activation over once A's lease has run out: AssumeRole is
    called exactly once more, under the same role session name, and the request becomes
    active once, with B's credentials."""
    emu = ctx.emulator
    a, b = ctx.nodes(2, config={'aws': {'timeout': '120s'}})
    a.start()
    rid = a.request(profile='dev', ticket=None)['id']
    emu.hold('AssumeRole')
    st, d = a.approve(rid)
    assert st == 200 and d['state'] == 'activating', (st, d)
    (first,) = emu.wait_held(1)['calls']
    assert first['action'] == 'AssumeRole', first

    def lease():
        return tuple(a.query('SELECT lease_node, lease_until FROM requests WHERE id = ?',
                             (rid,))[0])
    assert lease()[0] == 'node-a', lease()
    b.start()
    since = time.time()
    # A renews its lease (2 s) while AWS holds the call: B, up for longer than a lease,
    # leaves it alone
    wait_for(lambda: lease()[1] > (since + 4.5) * 1000, 15, what='A renewing its lease')
    assert lease()[0] == 'node-a'
    calls = [e for e in emu.log_entries(first['seq'] - 1) if e['action'] == 'AssumeRole']
    assert len(calls) == 1 and emu.held() == 1, calls
    assert b.get(rid)['state'] == 'activating'

    a.kill9()
    emu.release()                                  # A's answer goes to a dead engine
    j = b.wait_state(rid, 'active', timeout=30)
    calls = [e for e in emu.log_entries(first['seq'] - 1) if e['action'] == 'AssumeRole']
    assert len(calls) == 2, calls
    assert calls[0]['params']['RoleSessionName'] == calls[1]['params']['RoleSessionName'] \
        == j['grant']['role_session_name'], calls
    assert b.events(rid).count('grant.activated') == 1
    assert b.query('SELECT lease_node, lease_until FROM requests WHERE id = ?', (rid,)) \
        == [(None, None)]
    r = b.cli('alice', 'creds', rid)
    assert r.returncode == 0, r.stderr
    key = json.loads(r.stdout)['AccessKeyId']
    assert [e for e in emu.log_entries(calls[1]['seq'] - 1)
            if e['seq'] == calls[1]['seq']][0]['issued_access_key_id'] == key
