"""Issue 9, part 3: refusals. Anonymous ones (bad signatures, unknown users, garbage
approval links) cost no durable write each - the first few of each reason per interval are
audited one by one, the rest counted into one summary record - and an address that collects
too many is answered 429 with Retry-After while everyone else is served. Approval links that
verify but are refused again and again (a decided request's link) are summarised the same
way per link. Refusals of signed callers are audited one by one as authz.refused."""
import base64
import http.client
import json
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import urllib.request

from harness import iso, mail_links, wait_for, wait_mail

DEBUG = bool(os.environ.get('ELEVATE_TEST_DEBUG'))


class Client:
    """Keep-alive HTTP from one loopback source address (127.0.0.2 ... are all local)."""

    def __init__(self, b, source):
        self.b, self.source = b, source
        self.conn = None

    def request(self, method, path, headers=None, body=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection('127.0.0.1', self.b.port, timeout=30,
                                                       source_address=(self.source, 0))
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                body = r.read()
                return r.status, dict(r.getheaders()), body
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def close(self):
        if self.conn is not None:
            self.conn.close()


def rnd(n):
    return base64.urlsafe_b64encode(os.urandom(n)).decode().rstrip('=')


def forged(user):
    """Made-up X-Elevate-* headers: a real or unknown user, a signature of random bytes."""
    return {'X-Elevate-User': user, 'X-Elevate-Date': iso(time.time()),
            'X-Elevate-Nonce': rnd(16),
            'X-Elevate-Signature': 'ed25519=' + base64.b64encode(os.urandom(64)).decode()}


# the three kinds of anonymous refusal: (what is sent, the status, its audit event and reason)
KINDS = [
    (lambda c: c.request('GET', '/v1/requests', forged('alice')), 401, 'auth.refused',
     'bad_signature'),
    (lambda c: c.request('GET', '/v1/requests', forged('mallory')), 401, 'auth.refused',
     'unknown_user'),
    (lambda c: c.request('GET', '/approve/' + rnd(60)), 403, 'token.refused', 'invalid'),
]


def metrics(b):
    with urllib.request.urlopen(b.url + '/metrics', timeout=10) as r:
        text = r.read().decode()
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r'^(elevate_\w+_total) (\d+)$', text, re.M)}


def last_seq(b):
    a = b.audit()
    return a[-1]['seq'] if a else 0


def anon_records(recs):
    """(individual records, summary records) of anonymous refusals among recs."""
    ind = [r for r in recs if r['event'] in ('auth.refused', 'token.refused')]
    summ = [r for r in recs if r['event'] in ('auth.refused_summary', 'token.refused_summary')]
    return ind, summ


def test_anonymous_refusals_are_summarised(ctx):
    """2,000 anonymous refusals from four addresses (bad signatures, unknown users, garbage
    approval links) add at most 100 audit records; the individual records and the summaries'
    counts add up to every refusal; the metrics count each one; a signed `elevate list`
    from 127.0.0.1 works meanwhile."""
    # a bucket larger than each address's share: this test is about the audit, not 429
    b = ctx.broker(config={'limits': {'refusal_burst': 1000}}).start()
    sources = ['127.0.0.%d' % i for i in range(2, 6)]
    per_source = 500
    seq0 = last_seq(b)
    sent = {}                     # (event, reason) -> count
    statuses = {}
    lock = threading.Lock()
    listed = []

    def flood(source):
        c = Client(b, source)
        try:
            for i in range(per_source):
                send, want, event, reason = KINDS[i % len(KINDS)]
                st, _, body = send(c)
                with lock:
                    statuses[st] = statuses.get(st, 0) + 1
                    if st == want:
                        sent[(event, reason)] = sent.get((event, reason), 0) + 1
        finally:
            c.close()

    def signed_list():
        # a well-signed call from 127.0.0.1 while the flood runs
        r = b.cli('alice', 'list')
        listed.append(r.returncode)

    t0 = time.time()
    threads = [threading.Thread(target=flood, args=(s,)) for s in sources]
    threads.append(threading.Thread(target=signed_list))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    total = len(sources) * per_source
    want = {}
    for i in range(per_source):
        want[KINDS[i % len(KINDS)][1]] = want.get(KINDS[i % len(KINDS)][1], 0) + len(sources)
    assert statuses == want, statuses
    assert sum(sent.values()) == total, sent
    assert listed == [0], listed

    # every refusal counted in the metrics, audited or not
    m = metrics(b)
    assert m['elevate_auth_refused_total'] == statuses[401], m
    assert m['elevate_tokens_refused_total'] == statuses[403], m
    assert m['elevate_rate_limited_total'] == 0, m
    during = [r for r in b.audit() if r['seq'] > seq0]

    # a clean stop writes the summaries of what was counted
    b.stop()
    added = [r for r in b.audit() if r['seq'] > seq0]
    if DEBUG:
        print('%d refusals in %.2fs: %d audit records while running, %d after the stop'
              % (total, elapsed, len(during), len(added)))
    assert len(added) <= 100, (len(added), [r['event'] for r in added])
    ind, summ = anon_records(added)
    others = {r['event'] for r in added if r not in ind and r not in summ}
    assert others <= {'daemon.stopped', 'audit.checkpoint'}, others
    for (event, reason), n in sent.items():
        mine = [r for r in ind if r['event'] == event and r['data']['reason'] == reason]
        sums = [r for r in summ if r['event'] == event + '_summary' and
                r['data']['reason'] == reason]
        assert 1 <= len(mine) <= 5 * len(sums or [None]), (event, reason, len(mine))
        assert sums, (event, reason, 'no summary')
        assert len(mine) + sum(s['data']['count'] for s in sums) == n, \
            (event, reason, n, len(mine), [s['data'] for s in sums])
        assert sum(s['data']['audited_individually'] for s in sums) == len(mine)
        for r in mine:
            assert r['actor'] == 'anonymous' and r['data']['peer'] in sources, r
        for s in sums:
            d = s['data']
            assert s['actor'] == 'anonymous', s
            assert d['first_peer'] in sources and d['last_peer'] in sources, d
            assert d['interval_start'] <= d['first_at'] <= d['last_at'], d
    # the exported file (what auditors verify) holds the same records
    lines = [json.loads(x) for x in open(b.audit_file)]
    assert [x['seq'] for x in lines if x['seq'] > seq0] == [r['seq'] for r in added]


def test_summary_written_by_the_reaper(ctx):
    """The summary of an interval is written when the interval ends, with no stop and no
    further refusal; the next interval starts with its own individual records."""
    b = ctx.broker(config={'audit': {'refusal_interval': '2s', 'refusals_individual': 2}}).start()
    c = Client(b, '127.0.0.8')
    seq0 = last_seq(b)
    for _ in range(7):
        assert c.request('GET', '/v1/requests', forged('mallory'))[0] == 401
    ind, summ = anon_records([r for r in b.audit() if r['seq'] > seq0])
    assert len(ind) == 2 and not summ, (ind, summ)

    def summary():
        return anon_records([r for r in b.audit() if r['seq'] > seq0])[1]
    got = wait_for(summary, 6, 0.1, what='the interval summary')
    d = got[0]['data']
    assert got[0]['event'] == 'auth.refused_summary', got
    assert (d['reason'], d['count'], d['audited_individually']) == ('unknown_user', 5, 2), d
    assert d['first_peer'] == d['last_peer'] == '127.0.0.8', d
    # a new interval: two more on their own, the third counted
    seq1 = last_seq(b)
    for _ in range(3):
        assert c.request('GET', '/approve/' + rnd(50))[0] == 403
    c.close()
    got = wait_for(lambda: anon_records([r for r in b.audit() if r['seq'] > seq1])[1], 6, 0.1,
                   what='the second summary')
    ind, summ = anon_records([r for r in b.audit() if r['seq'] > seq1])
    assert [r['event'] for r in ind] == ['token.refused'] * 2, ind
    assert [(s['event'], s['data']['count']) for s in summ] == [('token.refused_summary', 1)]
    assert 'counting the rest into one summary' in b.logtext()


def test_flooding_address_gets_429(ctx):
    """An address past its refusal budget is answered 429 rate_limited with Retry-After
    before any signature check (no audit record, no store access), for every signed and
    approval-link route; other addresses, and a signed `elevate list` from 127.0.0.1, are
    served as before; once Retry-After has passed the address is heard again."""
    b = ctx.broker(config={'limits': {'refusal_burst': 20, 'refusal_rate': 30}}).start()
    flood = Client(b, '127.0.0.6')
    codes, retry = [], []
    for _ in range(60):
        st, h, body = flood.request('GET', '/v1/requests', forged('alice'))
        codes.append(st)
        if st == 429:
            err = json.loads(body)['error']
            assert err['code'] == 'rate_limited', err
            retry.append(int(h['Retry-After']))
    assert codes[:20] == [401] * 20, codes
    n401 = codes.count(401)
    assert n401 <= 23 and codes.count(429) == 60 - n401, codes   # 30/min: one back per 2 s
    assert retry and all(1 <= r <= 2 for r in retry), retry
    seq = last_seq(b)
    # while throttled: a well-signed call from that address and a link are refused too ...
    d = iso(time.time())
    nonce = rnd(16)
    h = {'X-Elevate-User': 'alice', 'X-Elevate-Date': d, 'X-Elevate-Nonce': nonce,
         'X-Elevate-Signature': b.users['alice'].sign('GET', '/v1/requests', d, nonce, b'')}
    assert flood.request('GET', '/v1/requests', h)[0] == 429
    assert flood.request('GET', '/approve/' + rnd(60))[0] == 429
    assert flood.request('POST', '/approve/' + rnd(60))[0] == 429
    assert flood.request('GET', '/healthz')[0] == 200           # public routes stay open
    # ... with no audit record at all
    assert last_seq(b) == seq, [r['event'] for r in b.audit() if r['seq'] > seq]
    # everybody else is served: a signed CLI call from 127.0.0.1, a refusal from another
    # address is still an ordinary 401
    r = b.cli('alice', 'list')
    assert r.returncode == 0, r.stdout + r.stderr
    other = Client(b, '127.0.0.7')
    st, _, body = other.request('GET', '/v1/requests', forged('mallory'))
    assert st == 401 and json.loads(body)['error']['code'] == 'unknown_user', (st, body)
    other.close()
    m = metrics(b)
    assert m['elevate_rate_limited_total'] == codes.count(429) + 3, m
    assert m['elevate_auth_refused_total'] == n401 + 1, m
    assert '127.0.0.6: too many refusals' in b.logtext()
    # Retry-After is honest: after it, the address is heard (and refused on the merits)
    time.sleep(max(retry[-1], 2) + 0.2)
    st, _, body = flood.request('GET', '/v1/requests', forged('alice'))
    assert st == 401 and json.loads(body)['error']['code'] == 'bad_signature', (st, body)
    flood.close()


def store_counts(b):
    """(audit records, nonces) in the store, read straight from the database: a signed
    call to ask would add a nonce."""
    db = sqlite3.connect(os.path.join(b.state_dir, 'elevate.db'), timeout=10)
    try:
        return tuple(db.execute('SELECT count(*) FROM %s' % t).fetchone()[0]
                     for t in ('audit', 'nonces'))
    finally:
        db.close()


def test_decided_link_refusals_are_summarised(ctx):
    """Twenty views of a pending request's page write nothing to the store. Then, the
    request denied by another approver, the same link opened 102 times: each answer is the
    same 409 "Already decided" page with the page headers; the first 2
    (audit.refusals_individual) are audited one by one as token.refused naming carol and
    the request, the other 100 write nothing to the store (audit and nonces unchanged) and
    become one token.refused_summary of that link at the interval's end (here: the clean
    stop), count 100. The same link POSTed (decides nothing), and dave's link of the same
    request, are kinds of their own, audited one by one meanwhile; the metrics count every
    refusal."""
    tmp = tempfile.mkdtemp(prefix='elevate-refusals-')
    ctx._cleanup.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    smtp = ctx.smtp(tmp).start()
    b = ctx.broker(smtp_port=smtp.port, config={'audit': {'refusals_individual': 2}}).start()
    rid = b.request(reason='to be denied')['id']
    msgs = wait_mail(smtp, 2, pred=lambda m: rid in str(m['raw']) and
                     str(m['msg']['Subject']).startswith('Approve '))
    links = {m['rcpt'][0].split('@')[0]: mail_links(m['msg'])[0][0] for m in msgs}
    assert set(links) == {'carol', 'dave'}, links
    carol = Client(b, '127.0.0.1')
    path = '/approve/' + links['carol'].rsplit('/', 1)[1]
    # while pending, the page itself writes nothing either (the link is used by a POST)
    before = store_counts(b)
    for _ in range(20):
        st, _, body = carol.request('GET', path)
        assert st == 200 and b'<form' in body, (st, body[:300])
    assert store_counts(b) == before, (store_counts(b), before)
    st, d = b.api('dave', 'POST', '/v1/requests/%s/deny' % rid, {'comment': 'no'})
    assert st == 200 and d['state'] == 'denied', d
    seq = last_seq(b)
    refused0 = metrics(b)['elevate_tokens_refused_total']

    first = [carol.request('GET', path) for _ in range(2)]
    assert [f[0] for f in first] == [409, 409], first
    page = first[0][2]
    assert b'Already decided' in page and b'This request has already been decided.' in page
    written = store_counts(b)
    for _ in range(100):
        st, h, body = carol.request('GET', path)
        assert st == 409 and body == page, (st, body[:300])
        assert "default-src 'none'" in h['Content-Security-Policy'], h
        assert h['Cache-Control'] == 'no-store', h
    assert store_counts(b) == written, (store_counts(b), written)
    st, _, body = carol.request('POST', path, {'Content-Type':
                                               'application/x-www-form-urlencoded'},
                                'decision=approve')
    assert st == 409 and b'Already decided' in body, (st, body[:300])
    st, _, _ = carol.request('GET', '/approve/' + links['dave'].rsplit('/', 1)[1])
    assert st == 409, st
    carol.close()
    assert metrics(b)['elevate_tokens_refused_total'] - refused0 == 104
    running = [r for r in b.audit() if r['seq'] > seq and r['event'].startswith('token.')]
    assert [(r['actor'], r['data']['method']) for r in running] == [
        ('carol', 'GET'), ('carol', 'GET'), ('carol', 'POST'), ('dave', 'GET')], running
    r = b.get(rid)
    assert r['state'] == 'denied' and [(a['approver'], a['decision']) for a in
                                       r['approvals']] == [('dave', 'deny')], r

    b.stop()
    recs = [r for r in b.audit() if r['seq'] > seq and r['event'].startswith('token.')]
    ind = [r for r in recs if r['event'] == 'token.refused']
    summ = [r for r in recs if r['event'] == 'token.refused_summary']
    assert all(r['request_id'] == rid and r['data']['reason'] == 'already_decided' and
               r['data']['peer'] == '127.0.0.1' for r in ind), ind
    assert len(summ) == 1, summ
    s = summ[0]
    assert (s['actor'], s['request_id']) == ('carol', rid), s
    d = s['data']
    assert (d['reason'], d['method'], d['count'], d['audited_individually']) == \
        ('already_decided', 'GET', 100, 2), d
    assert d['first_peer'] == d['last_peer'] == '127.0.0.1', d
    assert d['interval_start'] <= d['first_at'] <= d['last_at'], d
    assert len(ind) + d['count'] == 104


def test_authz_refusals_are_audited(ctx):
    """bob reading alice's request (404, as if missing), erin (an approver of prod-admin
    only) approving a prod-readonly request, carol approving her own request: each refused
    as before and audited exactly once as authz.refused (who, what, why), and logged."""
    b = ctx.broker().start()
    rid = b.request()['id']
    own = b.request(user='carol', profile='prod-admin', duration='5m', ticket=None)['id']
    seq = last_seq(b)

    st, d = b.api('bob', 'GET', '/v1/requests/' + rid)
    assert st == 404 and d['error']['code'] == 'not_found', (st, d)
    st, d = b.approve(rid, 'erin')
    assert st == 403 and d['error']['code'] == 'forbidden', (st, d)
    st, d = b.approve(own, 'carol')
    assert st == 403 and 'own' in d['error']['message'], (st, d)
    # not refusals: a request that does not exist, reading what one may see
    st, _ = b.api('bob', 'GET', '/v1/requests/req_doesnotexist')
    assert st == 404
    assert b.get(rid, 'carol')['state'] == 'pending'
    assert b.get(own, 'carol')['approvals'] == []

    got = [r for r in b.audit() if r['seq'] > seq]
    refused = [r for r in got if r['event'] == 'authz.refused']
    assert [(r['actor'], r['request_id'], r['data']['action']) for r in refused] == [
        ('bob', rid, 'request.show'), ('erin', rid, 'request.approve'),
        ('carol', own, 'request.approve')], refused
    assert 'bob may not see request %s (of alice' % rid in refused[0]['data']['why']
    assert 'erin is not among its approvers' in refused[1]['data']['why']
    assert 'cannot approve a request of their own' in refused[2]['data']['why']
    assert [r['event'] for r in got] == ['authz.refused'] * 3, [r['event'] for r in got]
    assert metrics(b)['elevate_authz_refused_total'] == 3
    log = b.logtext()
    for who, what in (('bob', 'request.show'), ('erin', 'request.approve'),
                      ('carol', 'request.approve')):
        assert 'authz: %s may not %s' % (who, what) in log, (who, what)


def test_trusted_proxy_forwarded_for(ctx):
    """Behind the configured reverse proxy each client is known by the address the proxy
    appended to X-Forwarded-For: one client flooding through the proxy is throttled, the
    others going through the same proxy are not. Anyone else's X-Forwarded-For is ignored."""
    b = ctx.broker(config={'trusted_proxy': '127.0.0.1',
                           'limits': {'refusal_burst': 5}}).start()
    proxy = Client(b, '127.0.0.1')
    seq = last_seq(b)

    def via(client_xff, user='alice'):
        return proxy.request('GET', '/v1/requests',
                             dict(forged(user), **{'X-Forwarded-For': client_xff}))
    # the first entry is whatever the client claimed; the last is what the proxy saw
    codes = [via('10.9.9.9, 203.0.113.9')[0] for _ in range(7)]
    assert codes == [401] * 5 + [429] * 2, codes
    peers = {r['data']['peer'] for r in b.audit() if r['seq'] > seq and
             r['event'] == 'auth.refused'}
    assert peers == {'203.0.113.9'}, peers
    # another client through the same proxy, signed: served
    st, d = b.api('alice', 'GET', '/v1/requests', headers={'X-Forwarded-For': '198.51.100.1'})
    assert st == 200, (st, d)
    assert b.cli('alice', 'list').returncode == 0          # the proxy's own address
    # a client that is not the proxy cannot choose its address
    direct = Client(b, '127.0.0.9')
    seq = last_seq(b)
    # (an unknown user: the 5 bad signatures above used this interval's individual records)
    st, _, _ = direct.request('GET', '/v1/requests',
                              dict(forged('mallory'), **{'X-Forwarded-For': '203.0.113.9'}))
    assert st == 401, st
    assert [r['data']['peer'] for r in b.audit() if r['seq'] > seq] == ['127.0.0.9']
    direct.close()
    proxy.close()
