"""Races, forced: every pair of {quorum-completing approval (Q), cancel (C), deny (D),
revoke (R), extension approval (X), lapse (L), window end (W)}, in both orders, plus two
extensions of one grant and a re-mint racing a revoke (docs/lifecycle.md, "Races, and who
wins").

Nothing here hopes that a sleep lands in a window. The emulator holds an AWS call open
(AssumeRole for a mint, DescribeSessions or PutRolePolicy for the reaper, which is one
thread, so holding its call also holds back every lapse and window end of that broker)
while the test acts; the only sleeps wait for a known deadline (pending_until, window_end)
to have passed by 1.5 s, which the reaper meets to the second.

Where two events cannot meet on one request (cancel, deny and lapse take pending requests;
revoke and window end take grants), the test pairs the grant's event with its pending
extension, or asserts the refusal; each docstring says which.

    pair      test (both orders in each)
    Q-Q       test_approve_vs_approve (two votes on one request)
    Q-C Q-D   test_quorum_vs_cancel, test_quorum_vs_deny
    Q-R Q-X   test_quorum_vs_revoke, test_quorum_vs_extension
    Q-L Q-W   test_quorum_vs_lapse, test_quorum_vs_window_end
    C-D       test_cancel_vs_deny
    C-R D-R   test_cancel_vs_revoke, test_deny_vs_revoke
    C-X D-X   test_cancel_vs_extension, test_deny_vs_extension
    C-L D-L   test_cancel_vs_lapse, test_deny_vs_lapse
    C-W D-W   test_cancel_vs_window_end, test_deny_vs_window_end
    R-X R-L   test_revoke_vs_extension, test_revoke_vs_lapse
    R-W       test_revoke_vs_window_end
    X-L X-W   test_extension_vs_lapse, test_extension_vs_window_end
    X-X       test_two_extensions_never_outgrow_max_duration (the 80-minute window bug)
    L-W       test_lapse_vs_window_end
    re-mint   test_remint_vs_revoke

Every test ends by checking that the audit history of every request it touched is a path
through docs/lifecycle.md's transition table that ends in the request's current state.

test_two_nodes_*: the races between API calls again, on two nodes of one deployment on
PostgreSQL (issue 12), each contending call sent to the other node (rival(b)): Q-Q, Q-C,
Q-D, Q-R, C-D, C-R, D-X, R-X, X-X and re-mint vs revoke; and two revocations of one role,
one through each node (test_two_nodes_revoke_one_role)."""
import copy
import json
import os
import threading
import time

import harness
from harness import parse_iso, wait_for

ROOT = harness.ROOT
LIFECYCLE_MD = os.path.join(ROOT, 'docs', 'lifecycle.md')
MARGIN = 1.5                                     # past a deadline before we look


# ---- the transition table and the audit path check ----

def load_table(path=LIFECYCLE_MD):
    """{(from, event): (to, audit event)} from the `## Transitions` table of the doc."""
    table, inside = {}, False
    with open(path) as f:
        for line in f:
            if line.startswith('## '):
                inside = line.strip() == '## Transitions'
                continue
            if not inside or not line.startswith('|'):
                continue
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            if len(cells) != 4 or cells[0] == 'from' or set(cells[0]) <= set('-: '):
                continue
            table[(cells[0], cells[1])] = (cells[2], cells[3])
    assert len(table) >= 10, 'docs/lifecycle.md: no transition table found (%r)' % table
    return table


def check_history(table, records):
    """The transition records (data.from/to) of one request, in seq order, are a path
    through the table from pending, each transition at most once. Returns the last state."""
    triples = {(f, to, ev) for (f, _e), (to, ev) in table.items()}
    recs = sorted(records, key=lambda r: r['seq'])
    for r in recs:                  # a transition's record always says from where to where
        if r['event'] in {ev for (_f, _t, ev) in triples}:
            assert isinstance(r['data'], dict) and 'from' in r['data'] and 'to' in r['data'], \
                ('a transition record without data.from/to', r)
    steps = [r for r in recs if isinstance(r['data'], dict) and 'from' in r['data']]
    state, seen = 'pending', set()
    for r in steps:
        d = r['data']
        assert 'to' in d, ('a transition record without data.to', r)
        t = (d['from'], d['to'], r['event'])
        assert d['from'] == state, ('transition from %s while the request was %s' %
                                    (d['from'], state), [(s['event'], s['data'].get('from'),
                                                          s['data'].get('to')) for s in steps])
        assert t in triples, ('not in docs/lifecycle.md\'s table', t)
        assert t not in seen, ('transition twice', t)
        seen.add(t)
        state = d['to']
    return state


try:   # the shared checker (tests/integration/lifecycle_check.py), when it is there
    import lifecycle_check as _shared_lc
except ImportError:
    _shared_lc = None


def check_paths(b, ids=None):
    """Every request the broker's audit names (or ids): its history is a table path that
    ends where GET says the request is now."""
    recs = sorted(b.audit(), key=lambda r: r['seq'])
    ids = ids or sorted({r['request_id'] for r in recs if r['request_id']})
    assert ids, 'no request was audited'
    table = _shared_lc.load_table(ROOT) if _shared_lc is not None else load_table()
    for rid in ids:
        mine = [r for r in recs if r['request_id'] == rid]
        now = b.get(rid, 'frank')['state']            # an admin sees every request
        hist = [(r['event'], r['data'].get('from'), r['data'].get('to')) for r in mine
                if isinstance(r['data'], dict)]
        if _shared_lc is not None:
            problems = _shared_lc.check_history(mine, table, final_state=now)
            assert not problems, (rid, problems, hist)
        else:
            last = check_history(table, mine)
            assert last == now, (rid, 'audit path ends in %s but the request is %s' %
                                 (last, now), hist)


# ---- small helpers ----

class Bg(threading.Thread):
    """A call on its own thread (an API call that blocks while AWS is held)."""

    def __init__(self, fn, *a, **kw):
        super().__init__(daemon=True)
        self.fn, self.a, self.kw = fn, a, kw
        self.result = self.exc = None
        self.start()

    def run(self):
        try:
            self.result = self.fn(*self.a, **self.kw)
        except BaseException as e:   # noqa: BLE001 - re-raised by get()
            self.exc = e

    def get(self, timeout=30):
        self.join(timeout)
        assert not self.is_alive(), 'the background call %s is still blocked' % self.fn.__name__
        if self.exc is not None:
            raise self.exc
        return self.result


def profiles(ttl=None):
    p = copy.deepcopy(harness.DEFAULT_PROFILES)
    if ttl:
        p['dev']['pending_ttl'] = ttl
    # the same role, a long pending_ttl: extensions that wait until the window's end
    p['devlong'] = dict(copy.deepcopy(p['dev']), pending_ttl='30m')
    # the reported bug's shape: a 1-hour profile
    p['dev1h'] = dict(copy.deepcopy(p['dev']), max_duration='1h', pending_ttl='30m')
    return p


def broker(ctx, ttl=None, nodes=1):
    """A broker, started. nodes=2: two nodes of one deployment on one PostgreSQL database
    (ctx.nodes), both started; the first is returned, and rival(b) is the second."""
    if nodes == 1:
        return ctx.broker(profiles=profiles(ttl)).start()
    a, b = ctx.nodes(nodes, profiles=profiles(ttl))
    a.start()
    b.start()
    a.rival = b
    return a


def rival(b):
    """Where the call that contends with b's goes: the other node when the test runs on two
    nodes (broker(nodes=2)), else b itself."""
    return getattr(b, 'rival', None) or b


def revoke_answers(b):
    """What a revoke sent to rival(b) answers while AWS mints for the grant on b: `ending`
    (the minter ends it once AWS answers). On two nodes the node that serves the revoke is
    not the one minting and may end the grant itself (`ended`); what is minted afterwards
    is denied all the same, which the tests check."""
    return ('ending', 'ended') if rival(b) is not b else ('ending',)


def pending(b, user='alice', profile='dev', duration='15m'):
    return b.request(user=user, profile=profile, duration=duration, ticket=None)


def active(b, user='alice', profile='dev', duration='15m'):
    j = pending(b, user, profile, duration)
    return b.approve_until(j['id'])


def extend(b, rid, by, user='alice'):
    st, d = b.api(user, 'POST', '/v1/requests/%s/extend' % rid, {'by': by})
    assert st == 201 and d['state'] == 'pending' and d['extends'] == rid, (st, d)
    return d


def act(b, what, rid, user):
    """cancel, deny, approve, revoke, extend: the raw (status, answer)."""
    if what == 'extend':
        return b.api(user, 'POST', '/v1/requests/%s/extend' % rid, {'by': '5m'})
    return b.api(user, 'POST', '/v1/requests/%s/%s' % (rid, what), {})


def creds(b, rid, user='alice'):
    return b.api(user, 'GET', '/v1/requests/%s/credentials' % rid)


def state(b, rid):
    return b.get(rid, 'frank')['state']


def wait_state(b, rid, want, timeout=15):
    return b.wait_state(rid, want, timeout)


def conflict(ans, *words, soft=None):
    """A 409 `conflict` whose message names each of words. With soft (a list), a missing
    word is noted there for the test to fail on at its end, so the rest still runs."""
    st, d = ans
    assert st == 409 and isinstance(d, dict) and d['error']['code'] == 'conflict', ans
    msg = d['error']['message']
    for w in words:
        if w in msg:
            continue
        if soft is None:
            raise AssertionError('409 message lacks %r: %s' % (w, msg))
        soft.append('409 message lacks %r: %s' % (w, msg))
    return msg


def no_soft_failures(soft):
    assert not soft, '\n'.join(soft)


def sleep_until(t):
    time.sleep(max(0.0, t - time.time()))


def held(emu, action, n=1, timeout=10.0):
    """Waits until n calls of `action` are held; returns them."""
    deadline = time.time() + timeout
    while True:
        st = emu.hold_status()
        got = [c for c in st['calls'] if c['action'] == action]
        if len(got) >= n:
            return got
        assert time.time() < deadline, ('expected %d held %s within %.1fs' % (n, action, timeout),
                                        st)
        time.sleep(0.02)


def calls(emu, since, action):
    return [e for e in emu.log_entries(since) if e['action'] == action]


def issued_key(emu, seq):
    """The access key an AssumeRole (log seq) issued, once it answered."""
    def got():
        e = [x for x in emu.log_entries(seq - 1) if x['seq'] == seq]
        return e and e[0].get('status') is not None and e[0]
    e = wait_for(got, 10, what='AssumeRole %d answered' % seq)
    assert e['status'] == 200 and e.get('issued_access_key_id'), e
    return e['issued_access_key_id']


def decision(emu, akid):
    return emu.decision(akid)


def wait_denied(emu, userid, timeout=10):
    wait_for(lambda: emu.session_denied(userid), timeout, 0.1,
             what='%s denied by its role\'s revocation policy' % userid)


def events(b, rid):
    return b.events(rid)


def window(b, rid):
    g = b.get(rid, 'frank')
    return parse_iso(g['window_start']), parse_iso(g['window_end'])


# ---- Q: the quorum-completing approval, minting (AssumeRole held) ----

def _quorum_held(b, emu, rid, approver='carol'):
    """Arms a hold on AssumeRole and approves: the approval answers `activating` (the
    minting goes on after the answer) and its AssumeRole is held. Returns the held call."""
    emu.hold('AssumeRole')
    st, d = b.approve(rid, approver)
    assert st == 200 and d['state'] == 'activating', (st, d)
    (call,) = held(emu, 'AssumeRole')
    assert state(b, rid) == 'activating'
    return call


def _cancel_or_deny_vs_quorum(ctx, what, user, nodes=1):
    """Q then C/D: 409 (activating; revoke suggested), the minting finishes into active.
    C/D then Q: the approval gets 409 and nothing is minted."""
    emu = ctx.emulator
    b = broker(ctx, nodes=nodes)
    # Q first: the cancel/deny arrives while the quorum's AssumeRole is held
    soft = []
    r = pending(b)
    call = _quorum_held(b, emu, r['id'])
    conflict(act(rival(b), what, r['id'], user), 'activating', 'revoke', soft=soft)
    conflict(rival(b).approve(r['id'], 'dave'))   # a further approval: already decided
    conflict(creds(rival(b), r['id']))            # nothing handed out while activating
    assert state(b, r['id']) == 'activating'
    emu.release()
    wait_state(b, r['id'], 'active')
    st, c = creds(b, r['id'])
    assert st == 200 and c['AccessKeyId'] == issued_key(emu, call['seq']), (st, c)
    ev = events(b, r['id'])
    assert 'request.cancelled' not in ev and 'request.denied' not in ev, ev
    # C/D first: the approval loses and nothing is minted
    r2 = pending(b)
    st, d = act(rival(b), what, r2['id'], user)
    want = 'cancelled' if what == 'cancel' else 'denied'
    assert st == 200 and d['state'] == want, (st, d)
    since = emu.last_seq()
    conflict(b.approve(r2['id'], 'carol'), want)
    assert state(b, r2['id']) == want and not calls(emu, since, 'AssumeRole')
    check_paths(b)
    no_soft_failures(soft)


def test_quorum_vs_cancel(ctx):
    _cancel_or_deny_vs_quorum(ctx, 'cancel', 'alice')


def test_quorum_vs_deny(ctx):
    _cancel_or_deny_vs_quorum(ctx, 'deny', 'dave')


def test_quorum_vs_revoke(ctx, nodes=1):
    """Q then R: the revoke is accepted while minting and wins: the minting finishes into
    ending, what was minted is denied, the request ends, nothing is handed out. (On two
    nodes the node serving the revoke may end the request itself: the minter then denies
    what it minted.)
    R then Q: revoking a pending request is refused; the approval then activates."""
    emu = ctx.emulator
    b = broker(ctx, nodes=nodes)
    r = pending(b)
    call = _quorum_held(b, emu, r['id'])
    # accepted at once although AWS is still minting for it: ending
    st, d = Bg(act, rival(b), 'revoke', r['id'], 'alice').get(timeout=5)
    assert st == 200 and d['state'] in revoke_answers(b), (st, d)
    conflict(creds(rival(b), r['id']))
    conflict(act(rival(b), 'cancel', r['id'], 'alice'))
    emu.release()
    wait_state(b, r['id'], 'ended')
    key = issued_key(emu, call['seq'])
    if d['state'] == 'ending':          # the minter ended it, with what it minted recorded
        g = b.get(r['id'])
        assert g['grant'] and g['grant']['assumed_role_id'], g
        wait_denied(emu, g['grant']['assumed_role_id'])
    wait_for(lambda: decision(emu, key) == 'explicit_deny', 10, 0.1,
             what='the credentials minted after the revoke denied')
    conflict(creds(b, r['id']))
    ev = events(b, r['id'])
    assert 'grant.activated' not in ev and 'grant.credentials_fetched' not in ev, ev
    assert 'grant.minted_after_revoke' in ev, ev
    # R first: a pending request cannot be revoked; it stays decidable
    r2 = pending(b)
    conflict(act(b, 'revoke', r2['id'], 'alice'), 'pending')
    b.approve_until(r2['id'])
    assert 'grant.revoke_requested' not in events(b, r2['id'])
    check_paths(b)


def test_approve_vs_approve(ctx, nodes=1):
    """Q-Q: two votes on one request. One approval needed: the first vote completes the
    quorum (its AssumeRole held) and the second gets 409; one mint. Two needed (prod-admin:
    an SRE lead and a security member), both votes sent at once: both are counted (200),
    whichever commits second completes the quorum, and the grant is minted once."""
    emu = ctx.emulator
    b = broker(ctx, nodes=nodes)
    r = pending(b)
    since = emu.last_seq()
    _quorum_held(b, emu, r['id'])                   # carol's vote completes the quorum
    conflict(rival(b).approve(r['id'], 'dave'))      # dave's: already decided
    emu.release()
    wait_state(b, r['id'], 'active')
    assert len(calls(emu, since, 'AssumeRole')) == 1
    assert [a['approver'] for a in b.get(r['id'], 'frank')['approvals']] == ['carol']
    r2 = b.request(profile='prod-admin', duration='10m', reason='two votes', ticket=None)
    emu.hold('AssumeRole')
    since = emu.last_seq()
    v1 = Bg(b.approve, r2['id'], 'carol')
    v2 = Bg(rival(b).approve, r2['id'], 'erin')
    answers = [v1.get(), v2.get()]
    assert all(st == 200 and d['state'] in ('pending', 'activating') for st, d in answers), \
        answers
    held(emu, 'AssumeRole')
    emu.release()
    g = wait_state(b, r2['id'], 'active')
    assert sorted(a['approver'] for a in g['approvals']) == ['carol', 'erin'], g
    assert len(calls(emu, since, 'AssumeRole')) == 1
    assert events(b, r2['id']).count('grant.activated') == 1
    check_paths(b)


def test_quorum_vs_extension(ctx):
    """Q then X: a grant still being minted cannot be extended (409); once active it can.
    X then Q: while an extension's AssumeRole is held, a further approval of it gets 409
    and the quorum of a second extension of the same grant (counting the first as in
    flight) goes through; both apply, one after the other."""
    emu = ctx.emulator
    b = broker(ctx)
    g = pending(b, profile='dev1h', duration='20m')
    _quorum_held(b, emu, g['id'])
    conflict(act(b, 'extend', g['id'], 'alice'), 'activating')
    emu.release()
    wait_state(b, g['id'], 'active')
    start, end0 = window(b, g['id'])
    x1 = extend(b, g['id'], '15m')
    x2 = extend(b, g['id'], '15m')
    _quorum_held(b, emu, x1['id'])
    conflict(b.approve(x1['id'], 'dave'))               # already decided
    st, d = b.approve(x2['id'], 'dave')                # fits: 20 + 15 (in flight) + 15
    assert st == 200 and d['state'] == 'activating', (st, d)
    assert state(b, g['id']) == 'active' and window(b, g['id'])[1] == end0
    emu.release()
    for x in (x1, x2):
        wait_state(b, x['id'], 'ended')
    s, e = window(b, g['id'])
    assert s == start and e - end0 == 1800 and e - s == 50 * 60, (s, e, end0)
    assert events(b, g['id']).count('grant.extended') == 2
    check_paths(b)


def test_quorum_vs_lapse(ctx):
    """Q then L: a request whose AssumeRole is held past its pending_until does not lapse
    (only pending requests lapse); the minting finishes into active. L then Q: a request
    that lapsed cannot be approved. Both around the same deadline, and the lapsing one
    proves the reaper did sweep while the other was activating."""
    emu = ctx.emulator
    b = broker(ctx, ttl='2s')
    r = pending(b)
    other = pending(b)
    _quorum_held(b, emu, r['id'])
    sleep_until(max(parse_iso(r['pending_until']), parse_iso(other['pending_until'])) + MARGIN)
    wait_state(b, other['id'], 'lapsed', 5)
    assert state(b, r['id']) == 'activating'
    emu.release()
    wait_state(b, r['id'], 'active')
    assert 'request.lapsed' not in events(b, r['id'])
    since = emu.last_seq()
    conflict(b.approve(other['id'], 'carol'), 'lapsed')
    assert not calls(emu, since, 'AssumeRole')
    check_paths(b)


def test_quorum_vs_window_end(ctx):
    """Q then W: a grant's own window passes while its AssumeRole is held (the window
    starts before minting): it becomes active only to end at once; its credentials are
    never handed out and die by their session policy.
    W then Q: the grant's window has ended (the reaper still at work on it, its
    DescribeSessions held) when the quorum of its pending extension arrives: the extension
    fails GrantNotActive in the approval's own transaction and nothing is minted."""
    emu = ctx.emulator
    b = broker(ctx)
    # W then Q, set up first: grant g with a pending extension x (pending until g's end)
    g = active(b, duration='4s')
    x = extend(b, g['id'], '5m')
    assert x['pending_until'] == g['window_end'], (x, g)
    # Q then W: r's AssumeRole held across its window
    r = pending(b, duration='3s')
    call = _quorum_held(b, emu, r['id'])
    emu.hold('DescribeSessions')
    held(emu, 'DescribeSessions', timeout=parse_iso(g['window_end']) - time.time() + 5)
    assert state(b, g['id']) == 'ending' and state(b, x['id']) == 'pending'
    since = emu.last_seq()
    st, d = b.approve(x['id'], 'carol')
    assert st in (200, 409) and isinstance(d, dict), (st, d)
    xs = b.get(x['id'])
    assert xs['state'] == 'failed' and xs['failure']['code'] == 'GrantNotActive', xs
    assert not calls(emu, since, 'AssumeRole')
    sleep_until(int(call['since']) + 3 + MARGIN)      # r's window: start <= the hold + 3 s
    assert state(b, r['id']) == 'activating'
    emu.release()
    wait_state(b, r['id'], ('active', 'ending', 'ended'))
    conflict(creds(b, r['id']))
    wait_state(b, r['id'], 'ended')
    wait_state(b, g['id'], 'ended')
    assert parse_iso(b.get(g['id'])['window_end']) == parse_iso(g['window_end'])
    assert decision(emu, issued_key(emu, call['seq'])) in ('implicit_deny', 'explicit_deny',
                                                           'expired')
    ev = events(b, r['id'])
    assert 'grant.credentials_fetched' not in ev and 'grant.window_ended' in ev, ev
    assert 'request.lapsed' not in events(b, x['id'])
    check_paths(b)


# ---- C and D: cancel and deny of pending requests (no AWS call of their own) ----

def test_cancel_vs_deny(ctx, nodes=1):
    """C then D, D then C: whichever commits first wins, the other gets 409. Neither calls
    AWS, so the order is the order of the calls."""
    emu = ctx.emulator
    b = broker(ctx, nodes=nodes)
    since = emu.last_seq()
    r1, r2 = pending(b), pending(b)
    st, d = act(b, 'cancel', r1['id'], 'alice')
    assert st == 200 and d['state'] == 'cancelled', (st, d)
    conflict(act(rival(b), 'deny', r1['id'], 'dave'), 'cancelled')
    st, d = act(b, 'deny', r2['id'], 'dave')
    assert st == 200 and d['state'] == 'denied', (st, d)
    conflict(act(rival(b), 'cancel', r2['id'], 'alice'), 'denied')
    assert state(b, r1['id']) == 'cancelled' and state(b, r2['id']) == 'denied'
    assert 'request.denied' not in events(b, r1['id'])
    assert 'request.cancelled' not in events(b, r2['id'])
    assert not calls(emu, since, 'AssumeRole')
    check_paths(b)


def _cancel_or_deny_vs_revoke(ctx, what, user, nodes=1):
    """R then C/D: a cancel or deny cannot overlap a revoke on one request (cancel and deny
    take pending requests, revoke active ones), so: while a grant's revocation is in flight
    (its PutRolePolicy held) the grant refuses cancel/deny (409) while its pending
    extension takes it. C/D then R: a cancelled/denied request cannot be revoked."""
    emu = ctx.emulator
    b = broker(ctx, nodes=nodes)
    g = active(b)
    x = extend(b, g['id'], '5m')
    # Two nodes: the other node's reaper may push the revocation entry first (its own
    # PutRolePolicy), and a hold of one call would then let the revocation's through:
    # every PutRolePolicy is held until the release below.
    emu.hold('PutRolePolicy', count=1 if nodes == 1 else 100)
    rv = Bg(act, b, 'revoke', g['id'], 'alice')
    held(emu, 'PutRolePolicy')
    if nodes == 1:
        assert state(b, g['id']) == 'ending'
    else:                     # the held call may be the other node's, before the revoke
        wait_state(b, g['id'], 'ending')
    conflict(act(rival(b), what, g['id'], user))
    want = 'cancelled' if what == 'cancel' else 'denied'
    st, d = act(rival(b), what, x['id'], user)
    assert st == 200 and d['state'] == want, (st, d)
    emu.release()
    st, d = rv.get()
    assert st == 200 and d['state'] == 'ended', (st, d)
    assert emu.session_denied(g['grant']['assumed_role_id'])
    assert window(b, g['id'])[1] == parse_iso(g['window_end'])
    conflict(b.approve(x['id'], 'carol'))
    # C/D first
    r = pending(b)
    st, d = act(b, what, r['id'], user)
    assert st == 200 and d['state'] == want, (st, d)
    conflict(act(rival(b), 'revoke', r['id'], 'alice'), want)
    assert 'grant.revoke_requested' not in events(b, r['id'])
    check_paths(b)


def test_cancel_vs_revoke(ctx):
    _cancel_or_deny_vs_revoke(ctx, 'cancel', 'alice')


def test_deny_vs_revoke(ctx):
    _cancel_or_deny_vs_revoke(ctx, 'deny', 'dave')


def _cancel_or_deny_vs_extension(ctx, what, user, nodes=1):
    """X then C/D: an extension whose AssumeRole is held is activating: cancel/deny get 409
    and it is applied. C/D then X: the extension's approval gets 409 and the window stays."""
    emu = ctx.emulator
    b = broker(ctx, nodes=nodes)
    g = active(b)
    end0 = parse_iso(g['window_end'])
    want = 'cancelled' if what == 'cancel' else 'denied'
    # C/D first
    x2 = extend(b, g['id'], '5m')
    st, d = act(b, what, x2['id'], user)
    assert st == 200 and d['state'] == want, (st, d)
    since = emu.last_seq()
    conflict(rival(b).approve(x2['id'], 'carol'), want)
    assert not calls(emu, since, 'AssumeRole') and window(b, g['id'])[1] == end0
    # X first
    x = extend(b, g['id'], '5m')
    soft = []
    _quorum_held(b, emu, x['id'])
    conflict(act(rival(b), what, x['id'], user), 'activating', 'revoke', soft=soft)
    emu.release()
    wait_state(b, x['id'], 'ended')
    assert window(b, g['id'])[1] == end0 + 300
    assert state(b, g['id']) == 'active'
    check_paths(b)
    no_soft_failures(soft)


def test_cancel_vs_extension(ctx):
    _cancel_or_deny_vs_extension(ctx, 'cancel', 'alice')


def test_deny_vs_extension(ctx):
    _cancel_or_deny_vs_extension(ctx, 'deny', 'dave')


def _cancel_or_deny_vs_lapse(ctx, what, user):
    """C/D then L: the reaper is held (a grant's revocation, DescribeSessions held) past a
    pending request's pending_until; the cancel/deny commits first and wins: the request
    never lapses. L then C/D: once the reaper lapsed a request, cancel/deny get 409."""
    emu = ctx.emulator
    b = broker(ctx, ttl='2s')
    blocker = active(b)
    emu.hold('DescribeSessions')
    rv = Bg(act, b, 'revoke', blocker['id'], 'alice')
    held(emu, 'DescribeSessions')
    r, r2 = pending(b), pending(b)                 # due only once the reaper is held
    sleep_until(max(parse_iso(r['pending_until']), parse_iso(r2['pending_until'])) + MARGIN)
    assert state(b, r['id']) == 'pending' and state(b, r2['id']) == 'pending'
    want = 'cancelled' if what == 'cancel' else 'denied'
    st, d = act(b, what, r['id'], user)            # due to lapse, not lapsed: C/D wins
    assert st == 200 and d['state'] == want, (st, d)
    emu.release()
    st, d = rv.get()
    assert st == 200 and d['state'] == 'ended', (st, d)
    wait_state(b, r2['id'], 'lapsed', 5)             # the reaper does lapse what is left
    conflict(act(b, what, r2['id'], user), 'lapsed')
    assert state(b, r['id']) == want and 'request.lapsed' not in events(b, r['id'])
    check_paths(b)


def test_cancel_vs_lapse(ctx):
    _cancel_or_deny_vs_lapse(ctx, 'cancel', 'alice')


def test_deny_vs_lapse(ctx):
    _cancel_or_deny_vs_lapse(ctx, 'deny', 'dave')


def _cancel_or_deny_vs_window_end(ctx, what, user):
    """Cancel/deny take pending requests, a window ends for active ones: the nearest pair is
    a grant's pending extension against the grant's window end.
    W then C/D: the window has ended (reaper held in DescribeSessions, grant ending): the
    grant refuses cancel/deny (409), its pending extension (due to lapse at the window's
    end, not yet lapsed) takes it. C/D then W: an extension cancelled/denied before the
    window ends stays so; the grant ends, its window unmoved."""
    emu = ctx.emulator
    b = broker(ctx)
    want = 'cancelled' if what == 'cancel' else 'denied'
    g2 = active(b, duration='3s')                   # ends first: its sweep is held
    x2 = extend(b, g2['id'], '5m')
    g1 = active(b, duration='5s')
    x1 = extend(b, g1['id'], '5m')
    st, d = act(b, what, x1['id'], user)             # C/D first
    assert st == 200 and d['state'] == want, (st, d)
    emu.hold('DescribeSessions')
    held(emu, 'DescribeSessions', timeout=parse_iso(g2['window_end']) - time.time() + 5)
    wait_state(b, g2['id'], 'ending', 3)
    assert state(b, x2['id']) == 'pending'
    conflict(act(b, what, g2['id'], user))
    st, d = act(b, what, x2['id'], user)
    assert st == 200 and d['state'] == want, (st, d)
    emu.release()
    for g, x in ((g1, x1), (g2, x2)):
        wait_state(b, g['id'], 'ended')
        assert window(b, g['id'])[1] == parse_iso(g['window_end'])
        assert state(b, x['id']) == want and 'request.lapsed' not in events(b, x['id'])
        assert 'grant.window_ended' in events(b, g['id'])
    check_paths(b)


def test_cancel_vs_window_end(ctx):
    _cancel_or_deny_vs_window_end(ctx, 'cancel', 'alice')


def test_deny_vs_window_end(ctx):
    _cancel_or_deny_vs_window_end(ctx, 'deny', 'dave')


# ---- R: revoke ----

def test_revoke_vs_extension(ctx, nodes=1):
    """X then R: the grant is revoked while its extension's AssumeRole is held: the revoke
    wins and the grant ends at once (the revoke does not wait for AWS), the extension fails
    GrantNotActive, the window does not move, and the credentials minted for the extension
    are denied. An extension itself cannot be revoked.
    R then X: the quorum of a pending extension of a revoked grant fails it GrantNotActive in
    the approval's own transaction, nothing minted."""
    emu = ctx.emulator
    b = broker(ctx, nodes=nodes)
    g = active(b)
    end0 = parse_iso(g['window_end'])
    x = extend(b, g['id'], '5m')
    call = _quorum_held(b, emu, x['id'])
    conflict(act(rival(b), 'revoke', x['id'], 'alice'), 'extension', 'revoke')
    # the grant ends without waiting for AWS to mint the extension (held)
    st, d = Bg(act, rival(b), 'revoke', g['id'], 'alice').get(timeout=5)
    assert st == 200 and d['state'] == 'ended', (st, d)
    conflict(act(rival(b), 'extend', g['id'], 'alice'))
    emu.release()
    xs = wait_state(b, x['id'], 'failed')
    assert xs['failure']['code'] == 'GrantNotActive', xs
    wait_state(b, g['id'], 'ended')
    assert window(b, g['id'])[1] == end0
    assert 'grant.extended' not in events(b, g['id'])
    wait_denied(emu, g['grant']['assumed_role_id'])
    assert decision(emu, issued_key(emu, call['seq'])) == 'explicit_deny'
    # R then X
    g2 = active(b)
    x2 = extend(b, g2['id'], '5m')
    st, d = act(b, 'revoke', g2['id'], 'alice')
    assert st == 200 and d['state'] == 'ended', (st, d)
    since = emu.last_seq()
    st, d = rival(b).approve(x2['id'], 'carol')
    assert st in (200, 409), (st, d)
    xs = b.get(x2['id'])
    assert xs['state'] == 'failed' and xs['failure']['code'] == 'GrantNotActive', xs
    assert not calls(emu, since, 'AssumeRole')
    assert window(b, g2['id'])[1] == parse_iso(g2['window_end'])
    check_paths(b)


def test_revoke_vs_lapse(ctx):
    """Revoke takes active/activating grants, a lapse pending requests. R before L: a
    pending request refuses the revoke (409) and then lapses; a lapsed one refuses it too.
    L due during R: a request whose AssumeRole is held past its pending_until does not lapse
    and a revoke of it is accepted and wins (it ends, what was minted is denied)."""
    emu = ctx.emulator
    b = broker(ctx, ttl='2s')
    p = pending(b)
    r = pending(b)
    conflict(act(b, 'revoke', p['id'], 'alice'), 'pending')
    call = _quorum_held(b, emu, r['id'])
    sleep_until(max(parse_iso(p['pending_until']), parse_iso(r['pending_until'])) + MARGIN)
    wait_state(b, p['id'], 'lapsed', 5)
    assert state(b, r['id']) == 'activating'
    conflict(act(b, 'revoke', p['id'], 'alice'), 'lapsed')
    # accepted at once although AWS is still minting for it: ending
    st, d = Bg(act, b, 'revoke', r['id'], 'alice').get(timeout=5)
    assert st == 200 and d['state'] == 'ending', (st, d)
    emu.release()
    wait_state(b, r['id'], 'ended')
    assert 'request.lapsed' not in events(b, r['id'])
    wait_denied(emu, b.get(r['id'])['grant']['assumed_role_id'])
    assert decision(emu, issued_key(emu, call['seq'])) == 'explicit_deny'
    conflict(creds(b, r['id']))
    check_paths(b)


def test_revoke_vs_window_end(ctx):
    """R then W: a revocation in flight (PutRolePolicy held) past the grant's window end:
    the grant is already ending, so the window end does not happen; the revoke finishes
    and the session is denied. W then R: a grant whose window ended (reaper held in
    DescribeSessions) refuses the revoke (409) and ends by its window."""
    emu = ctx.emulator
    b = broker(ctx)
    g1 = active(b, duration='3s')       # W then R
    g2 = active(b, duration='3s')       # R then W
    emu.hold('PutRolePolicy')
    rv = Bg(act, b, 'revoke', g2['id'], 'alice')
    held(emu, 'PutRolePolicy')
    sleep_until(max(parse_iso(g1['window_end']), parse_iso(g2['window_end'])) + MARGIN)
    # the reaper is busy with g2's revocation: g1 is due to end, g2 stays ending
    assert state(b, g2['id']) == 'ending' and state(b, g1['id']) == 'active'
    emu.hold('DescribeSessions')
    emu.release(1)
    st, d = rv.get()
    assert st == 200 and d['state'] == 'ended', (st, d)
    assert emu.session_denied(g2['grant']['assumed_role_id'])
    held(emu, 'DescribeSessions')
    assert state(b, g1['id']) == 'ending'
    conflict(act(b, 'revoke', g1['id'], 'alice'), 'ending')
    emu.release()
    wait_state(b, g1['id'], 'ended')
    e1, e2 = events(b, g1['id']), events(b, g2['id'])
    assert 'grant.window_ended' in e1 and 'grant.revoke_requested' not in e1, e1
    assert 'grant.revoke_requested' in e2 and 'grant.window_ended' not in e2, e2
    check_paths(b)


# ---- X: extension approval ----

def test_extension_vs_lapse(ctx):
    """X then L: an extension whose AssumeRole is held past its pending_until does not lapse;
    it is applied. L then X: a lapsed extension's approval gets 409, the window stays."""
    emu = ctx.emulator
    b = broker(ctx, ttl='2s')
    g = active(b)
    end0 = parse_iso(g['window_end'])
    x1 = extend(b, g['id'], '5m')
    x2 = extend(b, g['id'], '5m')
    _quorum_held(b, emu, x1['id'])
    sleep_until(max(parse_iso(x1['pending_until']), parse_iso(x2['pending_until'])) + MARGIN)
    wait_state(b, x2['id'], 'lapsed', 5)
    assert state(b, x1['id']) == 'activating'
    emu.release()
    wait_state(b, x1['id'], 'ended')
    assert 'request.lapsed' not in events(b, x1['id'])
    assert window(b, g['id'])[1] == end0 + 300
    since = emu.last_seq()
    conflict(b.approve(x2['id'], 'carol'), 'lapsed')
    assert not calls(emu, since, 'AssumeRole') and window(b, g['id'])[1] == end0 + 300
    check_paths(b)


def test_extension_vs_window_end(ctx):
    """X then W: the grant's window ends while its extension's AssumeRole is held: the
    grant ends on time without waiting for AWS, the extension then fails GrantNotActive,
    the window does not move, and the credentials minted for the extension are denied.
    W then X: an ended grant cannot be extended, and its pending extension lapsed with it
    (pending_until is the window's end), so approving it gets 409."""
    emu = ctx.emulator
    b = broker(ctx)
    g1 = active(b, duration='3s')
    x1 = extend(b, g1['id'], '5m')
    g2 = active(b, duration='3s')
    x2 = extend(b, g2['id'], '5m')
    call = _quorum_held(b, emu, x1['id'])
    sleep_until(max(parse_iso(g1['window_end']), parse_iso(g2['window_end'])) + MARGIN)
    # the window ends on time although AWS still mints the extension (held)
    wait_state(b, g1['id'], 'ended', 5)
    assert state(b, x1['id']) == 'activating'
    wait_state(b, g2['id'], 'ended', 5)
    wait_state(b, x2['id'], 'lapsed', 5)
    conflict(act(b, 'extend', g2['id'], 'alice'))
    conflict(b.approve(x2['id'], 'carol'), 'lapsed')
    emu.release()
    xs = wait_state(b, x1['id'], 'failed')
    assert xs['failure']['code'] == 'GrantNotActive', xs
    wait_state(b, g1['id'], 'ended')
    assert window(b, g1['id'])[1] == parse_iso(g1['window_end'])
    assert window(b, g2['id'])[1] == parse_iso(g2['window_end'])
    wait_denied(emu, g1['grant']['assumed_role_id'])
    assert decision(emu, issued_key(emu, call['seq'])) == 'explicit_deny'
    check_paths(b)


def test_two_extensions_never_outgrow_max_duration(ctx, nodes=1):
    """The reported bug: two 25-minute extensions of a 30-minute grant on a 1-hour profile
    made an 80-minute window. Both pending, both approved: exactly one applies, the other
    fails WindowExceeded. In flight (the first's AssumeRole held while the second's quorum
    arrives) and one after the other."""
    emu = ctx.emulator
    b = broker(ctx, nodes=nodes)
    for overlap in (True, False):
        g = active(b, profile='dev1h', duration='30m')
        start, end0 = window(b, g['id'])
        x1 = extend(b, g['id'], '25m')
        x2 = extend(b, g['id'], '25m')
        if overlap:
            _quorum_held(b, emu, x1['id'])
        else:
            b.approve_until(x1['id'], 'ended')
        since = emu.last_seq()
        st, d = rival(b).approve(x2['id'], 'dave')
        assert st in (200, 409), (overlap, st, d)
        assert not calls(emu, since, 'AssumeRole'), 'the refused extension minted'
        if overlap:
            emu.release()
            wait_state(b, x1['id'], 'ended')
        xs = b.get(x2['id'])
        assert xs['state'] == 'failed' and xs['failure']['code'] == 'WindowExceeded', \
            (overlap, xs)
        s, e = window(b, g['id'])
        assert s == start and e - s <= 3600, (overlap, (e - s) / 60)
        assert e - end0 == 25 * 60, (overlap, (e - end0) / 60)
        assert events(b, g['id']).count('grant.extended') == 1
    check_paths(b)


# ---- L and W ----

def test_lapse_vs_window_end(ctx):
    """A lapse takes pending requests, a window end active ones: the nearest pair is a
    grant's pending extension against the grant's window end.
    W then L: an extension pending until the window's end: the window ends first (reaper
    held in DescribeSessions: the grant is ending, the extension still pending), then it
    lapses. L then W: an extension whose pending_ttl is shorter lapses, then the window
    ends unmoved."""
    emu = ctx.emulator
    b = broker(ctx, ttl='2s')
    g1 = active(b, profile='dev', duration='5s')       # L then W
    x1 = extend(b, g1['id'], '5m')
    g2 = active(b, profile='devlong', duration='3s')   # W then L
    x2 = extend(b, g2['id'], '5m')
    assert parse_iso(x1['pending_until']) < parse_iso(g1['window_end'])
    assert x2['pending_until'] == g2['window_end']
    wait_state(b, x1['id'], 'lapsed', 5)
    assert state(b, g1['id']) == 'active'
    emu.hold('DescribeSessions')
    held(emu, 'DescribeSessions', timeout=parse_iso(g2['window_end']) - time.time() + 5)
    assert state(b, g2['id']) == 'ending' and state(b, x2['id']) == 'pending'
    emu.release()
    wait_state(b, x2['id'], 'lapsed', 5)
    for g in (g1, g2):
        wait_state(b, g['id'], 'ended', 10)
        assert window(b, g['id'])[1] == parse_iso(g['window_end'])

    def seq(rid, ev):
        return [r['seq'] for r in b.audit(rid) if r['event'] == ev][0]
    assert seq(x1['id'], 'request.lapsed') < seq(g1['id'], 'grant.window_ended')
    assert seq(g2['id'], 'grant.window_ended') < seq(x2['id'], 'request.lapsed')
    check_paths(b)


# ---- minting again while a revoke commits ----

def test_remint_vs_revoke(ctx, nodes=1):
    """Credentials minted again (GET credentials near their expiry, AssumeRole held) while a
    revoke commits: the revoke ends the grant without waiting for AWS; the credentials
    answer is 409, never credentials; what was minted is denied by its own entry, which
    lives as long as the new credentials (not the old ones' expiry, which the revocation
    read). Revoke first: the credentials answer is 409, nothing mints."""
    emu = ctx.emulator
    # AWS's clock 3,400 s behind ours: the 1-hour credentials it issues expire in ~200 s,
    # so every credentials call mints again (test_aws: ..._is_minted_again)
    emu.control('POST', 'clock', {'offset': -3400, 'skew_tolerance': None})
    try:
        b = broker(ctx, nodes=nodes)
        g = active(b, duration='2h')
        assert parse_iso(g['grant']['credentials_expire_at']) - time.time() < 300
        emu.hold('AssumeRole')
        c = Bg(creds, b, g['id'])
        (call,) = held(emu, 'AssumeRole')
        assert call and c.is_alive()
        # the grant ends without waiting for AWS to mint again (held), on either node
        st, d = Bg(act, rival(b), 'revoke', g['id'], 'alice').get(timeout=5)
        assert st == 200 and d['state'] == 'ended', (st, d)
        emu.release()
        conflict(c.get())
        wait_state(b, g['id'], 'ended')
        wait_denied(emu, g['grant']['assumed_role_id'])
        assert decision(emu, issued_key(emu, call['seq'])) == 'explicit_deny'
        ev = events(b, g['id'])
        assert 'grant.credentials_fetched' not in ev and 'grant.reminted' not in ev, ev
        (rec,) = [r['data'] for r in b.audit(g['id'])
                  if r['event'] == 'grant.minted_after_revoke']
        assert rec['denied_role_session'] == g['grant']['assumed_role_id'], rec
        assert rec['until'] >= parse_iso(g['grant']['credentials_expire_at']), rec
        conflict(creds(b, g['id']))
        # revoke first
        g2 = active(b, duration='2h')
        st, d = act(b, 'revoke', g2['id'], 'alice')
        assert st == 200 and d['state'] == 'ended', (st, d)
        since = emu.last_seq()
        conflict(creds(rival(b), g2['id']))
        assert not calls(emu, since, 'AssumeRole')
        check_paths(b)
    finally:
        emu.control('POST', 'clock', {'offset': 0, 'skew_tolerance': 300})


# ---- the same races on two nodes (issue 12) ----
#
# The contending calls go to the two nodes of one deployment on PostgreSQL (rival(b)); the
# emulator's hold forces the interleaving as before, whichever node's AWS call it holds.
# Races against the reaper (lapse, window end) stay single-node: holding one node's reaper
# call does not hold the other node's (test_ha covers due work across nodes).

def test_two_nodes_quorum_vs_cancel(ctx):
    _cancel_or_deny_vs_quorum(ctx, 'cancel', 'alice', nodes=2)


def test_two_nodes_quorum_vs_deny(ctx):
    _cancel_or_deny_vs_quorum(ctx, 'deny', 'dave', nodes=2)


def test_two_nodes_quorum_vs_revoke(ctx):
    test_quorum_vs_revoke(ctx, nodes=2)


def test_two_nodes_approve_vs_approve(ctx):
    test_approve_vs_approve(ctx, nodes=2)


def test_two_nodes_cancel_vs_deny(ctx):
    test_cancel_vs_deny(ctx, nodes=2)


def test_two_nodes_cancel_vs_revoke(ctx):
    _cancel_or_deny_vs_revoke(ctx, 'cancel', 'alice', nodes=2)


def test_two_nodes_deny_vs_extension(ctx):
    _cancel_or_deny_vs_extension(ctx, 'deny', 'dave', nodes=2)


def test_two_nodes_revoke_vs_extension(ctx):
    test_revoke_vs_extension(ctx, nodes=2)


def test_two_nodes_two_extensions(ctx):
    test_two_extensions_never_outgrow_max_duration(ctx, nodes=2)


def test_two_nodes_remint_vs_revoke(ctx):
    test_remint_vs_revoke(ctx, nodes=2)


# ---- one role's deny policy written by two nodes ----

def _role_lock_waiters(b, role):
    """Sessions waiting for the role's advisory lock among the nodes (store_pg.c): the
    bigint key is split over classid (high half) and objid (low half), objsubid 1."""
    return b.query(
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND"
        " objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) ="
        " hashtextextended('elevate role ' || ?, 0)", (role,))[0][0]


def test_two_nodes_revoke_one_role(ctx):
    """Two grants of one role revoked through the two nodes while the first node's
    PutRolePolicy is held. The document replaces the role's whole inline policy: the second
    node waits for the first (the role's lock among the nodes) and then writes both entries.
    Without the lock its document (both entries) landed first and the held one (the first
    grant only) overwrote it: a revoked session alive in IAM, its entry marked synced."""
    emu = ctx.emulator
    a = broker(ctx, nodes=2)
    b = rival(a)
    role = harness.DEFAULT_PROFILES['dev']['role_arn'].rsplit('/', 1)[1]
    g1, g2 = active(a), active(a)
    emu.hold('PutRolePolicy')
    r1 = Bg(act, a, 'revoke', g1['id'], 'alice')
    held(emu, 'PutRolePolicy')
    r2 = Bg(act, b, 'revoke', g2['id'], 'alice')
    # A's reaper is inside its held call: B's claims g2 and waits for the role
    wait_for(lambda: _role_lock_waiters(a, role) > 0 or state(a, g2['id']) == 'ended', 10,
             what='node B waiting for the role, or (the bug) ending g2 on its own')
    assert state(a, g2['id']) == 'ending', 'B wrote the role while A held it'
    emu.release()
    for r in (r1, r2):
        st, d = r.get(timeout=20)
        assert st == 200 and d['state'] == 'ended', (st, d)
    for g in (g1, g2):
        assert emu.session_denied(g['grant']['assumed_role_id']), g['id']
    assert a.query("SELECT COUNT(*) FROM revoked WHERE synced_at IS NULL")[0][0] == 0
    check_paths(a)
