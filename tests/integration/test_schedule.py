"""A randomized schedule: 8 clients for 30 s (ELEVATE_SCHEDULE_SECONDS=N: longer) doing random
legal and illegal operations on (at most) 50 requests while the emulator adds latency and
throttling. At the end every answer a client got must agree with the final state (and with
every later answer), no credentials went to a request that ended
cancelled/denied/lapsed/failed or after it was seen ending, each request's audit history is
a path through docs/lifecycle.md's transition table (each transition once), the audit
verifies, no window exceeds max_duration and every applied extension moved its window by its
own amount while the grant was active.

The seed is printed; ELEVATE_SCHEDULE_SEED=N replays the clients' choices (the daemon's and
the emulator's timing still vary)."""
import collections
import json
import os
import random
import re
import threading
import time

import lifecycle_check
from harness import ROOT, ACCOUNT, parse_iso

RUN_SECONDS = int(os.environ.get('ELEVATE_SCHEDULE_SECONDS') or 30)   # make soak-length runs: set it
CLIENTS = 8
MAX_REQUESTS = 50          # every request counts, extensions included
INITIAL = 20               # created before the clients start
MORE_CREATES = 14          # created by the clients during the first 40 s
EXTENSIONS = MAX_REQUESTS - INITIAL - MORE_CREATES
MAX_DURATION = 60          # every profile's max_duration ('1m', the policy's minimum)
SETTLE_SECONDS = 25        # after the run: wait for every window to end on its own ...
CLEANUP_SECONDS = 20       # ... then revoke / cancel what is left and wait again

PROFILES = {
    # one approval from sre-leads; short and longer pending_ttl so lapses happen in the run
    'solo': {
        'role_arn': 'arn:aws:iam::%s:role/ProdReadOnly' % ACCOUNT, 'region': 'ap-northeast-1',
        'requesters': ['group:engineers'], 'approvers': ['group:sre-leads'],
        'approvals_required': 1, 'allow_self_approval': False,
        'default_duration': '1m', 'max_duration': '1m', 'pending_ttl': '20s',
        'reason_required': False,
    },
    'solo-slow': {
        'role_arn': 'arn:aws:iam::%s:role/Dev' % ACCOUNT, 'region': 'ap-northeast-1',
        'requesters': ['group:engineers'], 'approvers': ['group:sre-leads'],
        'approvals_required': 1, 'allow_self_approval': False,
        'default_duration': '1m', 'max_duration': '1m', 'pending_ttl': '40s',
        'reason_required': False,
    },
    # prod-admin style: one sre-lead and one security approver (quorum races)
    'duo': {
        'role_arn': 'arn:aws:iam::%s:role/ProdAdmin' % ACCOUNT, 'region': 'ap-northeast-1',
        'requesters': ['group:engineers', 'group:sre-leads'],
        'approvers': [{'from': 'group:sre-leads', 'count': 1},
                      {'from': 'group:security', 'count': 1}],
        'default_duration': '1m', 'max_duration': '1m', 'pending_ttl': '30s',
        'reason_required': False,
    },
}
APPROVERS = {'solo': ['carol', 'dave'], 'solo-slow': ['carol', 'dave'],
             'duo': ['carol', 'dave', 'erin']}
ALL_USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']
ADMIN = 'frank'
LIVE = ('pending', 'activating', 'active', 'ending')


# ---- the transition table (docs/lifecycle.md, "## Transitions", via lifecycle_check) ----

def reachable(table):
    """{state: every state reachable from it, itself included}."""
    succ = collections.defaultdict(set)
    states = set()
    for f, _, t, _ in table:
        succ[f].add(t)
        states |= {f, t}
    out = {}
    for s in states:
        seen, todo = {s}, [s]
        while todo:
            for n in succ[todo.pop()]:
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        out[s] = seen
    return out


def terminal_states(table):
    froms = {f for f, _, _, _ in table}
    return {t for _, _, t, _ in table if t not in froms}


# ---- the checks: pure functions of what was recorded (self-tested below) ----
# Each returns problems as (kind, request id, text); the report groups them by kind.

def _ok(a):
    return 200 <= a['status'] < 300


def _fmt(a):
    return '%s %s by %s -> %s%s (t=%.2f..%.2f)' % (
        a['op'] if a.get('intent', 'legal') in ('legal', None) else '%s[%s]' % (a['op'],
                                                                             a['intent']),
        a['rid'], a['user'], a['status'],
        ' state=%s' % a['state'] if a.get('state') else
        (' %s' % a['code'] if a.get('code') else ''), a['t0'], a['t1'])


def check_answers(answers, final, table):
    """1. Every answer agrees with the final state (at most one problem per answer)."""
    reach = reachable(table)
    probs = []
    for a in answers:
        if a['rid'] is None:
            continue
        fin = final.get(a['rid'], {}).get('state')
        st = a.get('state')
        if a.get('never_ok') and _ok(a):
            probs.append(('a refused-by-identity operation was accepted', a['rid'], _fmt(a)))
        elif not _ok(a):
            continue
        elif fin is None:
            probs.append(('no final state', a['rid'], _fmt(a)))
        elif a['op'] == 'cancel' and (fin != 'cancelled' or st != 'cancelled'):
            probs.append(('acknowledged cancel, final %s' % fin, a['rid'], _fmt(a)))
        elif a['op'] == 'deny' and st == 'denied' and fin != 'denied':
            probs.append(('acknowledged deny, final %s' % fin, a['rid'], _fmt(a)))
        elif a['op'] == 'revoke' and (fin != 'ended' or st not in ('ending', 'ended')):
            probs.append(('acknowledged revoke (answer %s), final %s' % (st, fin), a['rid'],
                          _fmt(a)))
        elif st is not None and st not in reach:
            probs.append(('answer state %s is not in the table' % st, a['rid'], _fmt(a)))
        elif st is not None and fin not in reach[st]:
            probs.append(('%s answered %s, final %s (unreachable)' % (a['op'], st, fin),
                          a['rid'], _fmt(a)))
    # two answers on one request, the first answered before the second was sent: the
    # second's state must be reachable from the first's (first such pair per request)
    by = collections.defaultdict(list)
    for a in answers:
        if _ok(a) and a.get('state') in reach:
            by[a['rid']].append(a)
    for rid, lst in by.items():
        lst.sort(key=lambda a: a['t0'])
        back = None
        for i, b in enumerate(lst):
            for a in lst[:i]:
                if a['t1'] < b['t0'] and b['state'] not in reach[a['state']]:
                    back = (a, b)
                    break
            if back:
                break
        if back:
            probs.append(('state went back %s -> %s' % (back[0]['state'], back[1]['state']),
                          rid, '%s, then %s' % (_fmt(back[0]), _fmt(back[1]))))
    return probs


def check_credentials(answers, final):
    """2. No credentials for a request that ended without a grant, nor after it was seen
    cancelled, denied, ending or ended."""
    probs = []
    over = collections.defaultdict(list)      # rid -> answers showing no live grant
    for a in answers:
        if _ok(a) and a.get('state') in ('ending', 'ended', 'cancelled', 'denied', 'lapsed',
                                         'failed'):
            over[a['rid']].append(a)
    for a in answers:
        if a['op'] != 'credentials' or not _ok(a):
            continue
        fin = final.get(a['rid'], {}).get('state')
        if fin in ('cancelled', 'denied', 'lapsed', 'failed'):
            probs.append(('credentials for a request that ended %s' % fin, a['rid'], _fmt(a)))
        seen = [b for b in over[a['rid']] if b['t1'] < a['t0']]
        if seen:
            probs.append(('credentials after the request was seen %s' % seen[0]['state'],
                          a['rid'], '%s after %s' % (_fmt(a), _fmt(seen[0]))))
    return probs


def history_problems(records, table, final_state=None):
    """A request's audit history: lifecycle_check's path through the table from `pending`
    (from/to on every transition record, each transition once, ending in final_state), and
    besides: it starts with request.created and no transition follows a terminal state.
    [(kind, text)]"""
    probs = []
    for p in lifecycle_check.check_history(records, table, final_state):
        probs.append((re.sub(r' \(seq \d+\)', '', p), p))
    if not records or records[0]['event'] != 'request.created':
        probs.append(('history does not start with request.created',
                      str([r['event'] for r in records[:3]])))
    # the state after each transition record: its "to", or (a record without from/to)
    # the table's row for its event from the current state
    by_event = collections.defaultdict(list)
    for f, _, t, ev in table:
        by_event[ev].append((f, t))
    terminal = terminal_states(table)
    state = 'pending'
    for r in records:
        d = r.get('data') if isinstance(r.get('data'), dict) else {}
        if 'from' in d and 'to' in d:
            to = d['to']
        elif r['event'] in by_event:
            fits = [x for x in by_event[r['event']] if x[0] == state] or by_event[r['event']]
            to = fits[0][1]
        else:
            continue                       # a record that changes no state
        if state in terminal:
            probs.append(('%s after terminal %s' % (r['event'], state), '#%s' % r['seq']))
        state = to
    return probs


def _compact(recs):
    """The events of a history, runs of one event written once with a count."""
    out = []
    for r in recs:
        if out and out[-1][0] == r['event']:
            out[-1][1] += 1
        else:
            out.append([r['event'], 1])
    return ' '.join(e if n == 1 else '%s*%d' % (e, n) for e, n in out)


def check_histories(audits, final, table):
    """3. Per request: audits = {rid: [records in seq order]}."""
    probs = []
    for rid in sorted(final):
        recs = audits.get(rid, [])
        for kind, text in history_problems(recs, table, final[rid].get('state')):
            probs.append((kind, rid, '%s; history: %s' % (text, _compact(recs))))
    return probs


def _epoch(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and len(v) >= 19:
        return parse_iso(v)
    return None


def check_windows(final, answers, audits, max_duration):
    """5. No grant's window (every extension applied) lasts longer than max_duration: not
    in the final request, not in any answer, not in any grant.extended record."""
    probs = []
    worst = {}

    def see(rid, start, end, where):
        j = final.get(rid, {})
        if j.get('extends') or start is None or end is None:
            return
        limit = max_duration.get(j.get('profile'), MAX_DURATION)
        if end - start > limit and end - start > worst.get(rid, (0,))[0]:
            worst[rid] = (end - start, limit, where)
    for rid, j in final.items():
        start = _epoch(j.get('window_start'))
        see(rid, start, _epoch(j.get('window_end')), 'final')
        for r in audits.get(rid, []):
            if r['event'] == 'grant.extended':
                see(rid, start, _epoch((r['data'] or {}).get('new_window_end')),
                    'audit #%s grant.extended' % r['seq'])
    for a in answers:
        if a.get('win'):
            see(a['rid'], _epoch(a['win'][0]), _epoch(a['win'][1]), _fmt(a))
    for rid, (length, limit, where) in sorted(worst.items()):
        probs.append(('window longer than max_duration', rid,
                      '%ds > %ds (%s)' % (length, limit, where)))
    return probs


def check_extensions(final, audits):
    """5b. Every applied extension moved its grant's window by its own amount, from where
    the previous one left it (no lost update), and none moved it after the grant ended."""
    probs = []
    for rid, j in sorted(final.items()):
        if j.get('extends'):
            applied = [r for r in audits.get(rid, []) if r['event'] == 'request.extension_applied']
            for r in applied:
                d = r['data'] or {}
                old, new = _epoch(d.get('old_window_end')), _epoch(d.get('new_window_end'))
                if old is not None and new is not None and new - old != j.get('duration'):
                    probs.append(('extension moved the window by the wrong amount', rid,
                                  'by %s but %s -> %s' % (j.get('duration'), old, new)))
            continue
        end, over = None, None
        for r in audits.get(rid, []):
            d = r['data'] or {}
            if r['event'] == 'grant.activated':
                end = _epoch(d.get('window_end'))
            elif r['event'] in ('grant.ended', 'grant.window_ended', 'grant.revoke_requested'):
                over = over or r['event']
            elif r['event'] == 'grant.extended':
                old, new = _epoch(d.get('old_window_end')), _epoch(d.get('new_window_end'))
                if over:
                    probs.append(('window moved after %s' % over, rid,
                                  'audit #%s grant.extended %s -> %s' % (r['seq'], old, new)))
                if end is not None and old is not None and old != end:
                    probs.append(('extension lost: applied on a stale window_end', rid,
                                  'audit #%s grant.extended from %s but the window ended at '
                                  '%s' % (r['seq'], old, end)))
                end = new if new is not None else end
    return probs


def report(name, probs, examples=3):
    """Problems grouped by kind: how many answers/records, which requests, a few examples."""
    kinds = collections.OrderedDict()
    for kind, rid, text in probs:
        kinds.setdefault(kind, []).append((rid or '-', text))
    out = ['%s: %d problem(s) on %d request(s)' % (name, len(probs),
                                                     len({rid for _, rid, _ in probs}))]
    for kind, lst in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        rids = sorted({rid for rid, _ in lst})
        out.append('  * %s: %d on %s%s' % (kind, len(lst), ' '.join(rids[:12]),
                                           ' ...' if len(rids) > 12 else ''))
        firsts = collections.OrderedDict()
        for rid, text in lst:
            firsts.setdefault(rid, text)
        for text in list(firsts.values())[:examples]:
            out.append('      %s' % text)
    return '\n'.join(out)


def _selftest(table):
    """Each check must be able to fail: feed it one violation and one clean case."""
    def ans(op, rid, state=None, status=200, t0=0.0, t1=1.0, **kw):
        d = {'op': op, 'rid': rid, 'user': 'u', 'status': status, 'state': state, 't0': t0,
             't1': t1}
        d.update(kw)
        return d
    fin = {'r1': {'state': 'ended', 'profile': 'solo'},
           'r2': {'state': 'cancelled', 'profile': 'solo'}}
    assert check_answers([ans('cancel', 'r2', 'cancelled'), ans('approve', 'r1', 'active'),
                          ans('get', 'r1', 'ending', t0=2, t1=3),
                          ans('revoke', 'r1', 'ending', t0=2, t1=3)], fin, table) == []
    for bad in ([ans('cancel', 'r1', 'cancelled')], [ans('revoke', 'r2', 'ending')],
                [ans('deny', 'r1', 'denied')], [ans('approve', 'r2', 'active')],
                [ans('get', 'r1', 'ended'), ans('get', 'r1', 'active', t0=2, t1=3)],
                [ans('cancel', 'r1', status=200, never_ok=True)]):
        assert check_answers(bad, fin, table), ('check 1 misses', bad)
    assert check_credentials([ans('credentials', 'r1')], fin) == []
    assert check_credentials([ans('credentials', 'r2')], fin), 'check 2 misses'
    assert check_credentials([ans('revoke', 'r1', 'ended'),
                              ans('credentials', 'r1', t0=2, t1=3)], fin), 'check 2 misses'

    steps = {'request.approved': ('pending', 'activating'),
             'grant.activated': ('activating', 'active'),
             'grant.window_ended': ('active', 'ending'), 'grant.ended': ('ending', 'ended'),
             'request.cancelled': ('pending', 'cancelled')}

    def recs(*evs):
        return [{'seq': i, 'event': e,
                 'data': dict(zip(('from', 'to'), steps[e])) if e in steps else {}}
                for i, e in enumerate(evs)]
    good = recs('request.created', 'request.approval', 'request.approved', 'grant.activated',
                'grant.credentials_fetched', 'grant.window_ended', 'grant.ended')
    assert history_problems(good, table, 'ended') == [], history_problems(good, table, 'ended')
    no_from_to = recs('request.created', 'request.approved')
    no_from_to[1]['data'] = {}
    for bad, fs in ((recs('request.created', 'request.cancelled', 'request.approved',
                          'grant.activated'), 'active'),
                    (recs('request.created', 'request.approval', 'grant.activated'), 'active'),
                    (good + recs('grant.ended'), 'ended'),
                    (good, 'cancelled'), (no_from_to, 'activating'),
                    (recs('request.approved', 'grant.activated'), 'active')):
        assert history_problems(bad, table, fs), ('check 3 misses', [r['event'] for r in bad])
    assert any('after terminal' in k for k, _ in history_problems(
        recs('request.created', 'request.cancelled', 'request.approved'), table)), \
        'check 3 misses a transition after a terminal state'
    w = {'r1': {'profile': 'solo', 'window_start': '2026-01-01T00:00:00Z',
                'window_end': '2026-01-01T00:01:00Z'}}
    t = parse_iso('2026-01-01T00:00:00Z')

    def ext(seq, old, new):
        return {'seq': seq, 'event': 'grant.extended',
                'data': {'old_window_end': t + old, 'new_window_end': t + new}}
    act = {'seq': 1, 'event': 'grant.activated', 'data': {'window_end': t + 30}}
    ok = {'r1': [act, ext(2, 30, 45), ext(3, 45, 60)]}
    assert check_windows(w, [], ok, {'solo': 60}) == []
    assert check_extensions(w, ok) == []
    assert check_windows(w, [], {'r1': [act, ext(2, 30, 65)]}, {'solo': 60}), 'check 5 misses'
    assert check_extensions(w, {'r1': [act, ext(2, 30, 45), ext(3, 30, 40)]}), 'check 5b misses'
    assert check_extensions(w, {'r1': [act, {'seq': 2, 'event': 'grant.ended', 'data': {}},
                                       ext(3, 30, 40)]}), 'check 5b misses'
    w['r1']['window_end'] = '2026-01-01T00:01:05Z'
    assert check_windows(w, [], {}, {'solo': 60}), 'check 5 misses'


# ---- the clients ----

class World:
    def __init__(self, b, t_start):
        self.b = b
        self.t_start = t_start
        self.lock = threading.Lock()
        self.reqs = {}                     # rid -> meta
        self.order = []
        self.answers = []
        self.approving = collections.Counter()     # rid -> approve calls in flight
        self.extending = collections.Counter()     # parent rid -> extension work in flight
        self.approved_by = collections.defaultdict(set)
        self.creates = 0
        self.extensions = 0

    # every call is recorded: (sent, answered, user, op, request, status, state)
    def call(self, user, method, path, body, op, rid, intent='legal', never_ok=False):
        t0 = time.time()
        try:
            st, j = self.b.api(user, method, path, body)
        except Exception as e:             # no answer (timeout, reset): not acknowledged
            st, j = 0, {'error': {'code': 'no_answer', 'message': repr(e)}}
        t1 = time.time()
        a = {'t0': t0, 't1': t1, 'user': user, 'op': op, 'rid': rid, 'status': st,
             'state': None, 'code': None, 'intent': intent, 'never_ok': never_ok, 'win': None}
        if isinstance(j, dict):
            if isinstance(j.get('error'), dict):
                a['code'] = j['error'].get('code')
            if rid is not None and j.get('id') == rid:
                a['state'] = j.get('state')
                if j.get('window_start') and j.get('window_end'):
                    a['win'] = (j['window_start'], j['window_end'])
        with self.lock:
            self.answers.append(a)
            if a['state'] and rid in self.reqs:
                m = self.reqs[rid]
                if t1 >= m['seen_at']:
                    m['last'], m['seen_at'] = a['state'], t1
                    if a['win']:
                        m['win'] = a['win']
        return st, j, a

    def add(self, j, quiet, extends=None, owned=False, revocable=False):
        with self.lock:
            self.reqs[j['id']] = {'id': j['id'], 'profile': j['profile'],
                                  'requester': j['requester'], 'extends': extends,
                                  'quiet': quiet, 'owned': owned, 'last': j['state'],
                                  'revocable': revocable,
                                  'seen_at': time.time(), 'win': None}
            self.order.append(j['id'])

    def pick(self, rng, states=None, pred=None, among=None):
        with self.lock:
            pool = among if among is not None else self.order
            c = [r for r in pool if r in self.reqs and
                 (states is None or self.reqs[r]['last'] in states) and
                 (pred is None or pred(self.reqs[r]))]
            return dict(self.reqs[rng.choice(c)]) if c else None

    def elapsed(self):
        return time.time() - self.t_start


def approvers_of(m):
    return [u for u in APPROVERS[m['profile']] if u != m['requester']]


def outsiders_of(m, role):
    """Users who may never do `role` on request m."""
    if role == 'approve':
        return [u for u in ALL_USERS if u not in approvers_of(m)]
    if role == 'revoke':
        return [u for u in ALL_USERS if u != m['requester'] and u != ADMIN and
                u not in approvers_of(m)]
    return [u for u in ALL_USERS if u != m['requester']]     # cancel, extend, credentials


def create(w, rng, user=None, profile=None, op='create'):
    profile = profile or rng.choice(['solo', 'solo', 'solo-slow', 'duo', 'duo'])
    if user is None:
        user = rng.choice(['alice', 'bob'])
        if profile == 'duo' and rng.random() < 0.3:
            user = rng.choice(['carol', 'dave'])
    body = {'profile': profile, 'duration': '%ds' % rng.randint(15, 40),
            'reason': 'schedule %d' % rng.randint(0, 9999)}
    st, j, a = w.call(user, 'POST', '/v1/requests', body, op, None)
    if st == 201:
        a['rid'] = j['id']
        a['state'] = j.get('state')
        # half the grants are never revoked by a legal revoke: their windows end
        w.add(j, quiet=rng.random() < 0.2, revocable=rng.random() < 0.5)
    return st


def approve(w, rng, m, user=None, intent='legal', never_ok=False):
    user = user or rng.choice(approvers_of(m))
    with w.lock:
        w.approving[m['id']] += 1
        if m['extends']:
            w.extending[m['extends']] += 1
    try:
        st, j, a = w.call(user, 'POST', '/v1/requests/%s/approve' % m['id'], {}, 'approve',
                          m['id'], intent, never_ok)
    finally:
        with w.lock:
            w.approving[m['id']] -= 1
            if m['extends']:
                w.extending[m['extends']] -= 1
    if 200 <= st < 300:
        with w.lock:
            w.approved_by[m['id']].add(user)
    return st


def racing(w, rng, counter):
    """Requests some approval or extension is working on right now."""
    with w.lock:
        return [r for r, n in counter.items() if n > 0]


def op_approve(w, rng):
    m = w.pick(rng, ('pending',), lambda m: not m['quiet'] and not m.get('owned'))
    if m:
        approve(w, rng, m)


def op_deny(w, rng):
    among = racing(w, rng, w.approving) if rng.random() < 0.5 else None
    m = w.pick(rng, ('pending', 'activating'), lambda m: not m['quiet'], among)
    if m:
        w.call(rng.choice(approvers_of(m)), 'POST', '/v1/requests/%s/deny' % m['id'],
               {'comment': 'no'}, 'deny', m['id'])


def op_cancel(w, rng):
    among = racing(w, rng, w.approving) if rng.random() < 0.5 else None
    m = w.pick(rng, ('pending', 'activating'), lambda m: not m['quiet'], among)
    if m:
        w.call(m['requester'], 'POST', '/v1/requests/%s/cancel' % m['id'], None, 'cancel',
               m['id'])


def op_revoke(w, rng):
    among = None
    r = rng.random()
    if r < 0.15:
        among = racing(w, rng, w.extending)
    elif r < 0.35:
        among = racing(w, rng, w.approving)
    m = w.pick(rng, ('active', 'activating', 'pending') if among is not None else ('active',),
               lambda m: not m['extends'] and m['revocable'], among)
    if m:
        user = rng.choice([m['requester'], rng.choice(approvers_of(m)), ADMIN])
        w.call(user, 'POST', '/v1/requests/%s/revoke' % m['id'], {'reason': 'schedule'},
               'revoke', m['id'])


def op_extend(w, rng):
    """The requester extends an active grant and (mostly) has it approved at once;
    sometimes twice in a row before either is approved (each fits alone, both may not)."""
    parent = None
    if rng.random() < 0.3:    # a grant that already has an extension pending
        with w.lock:
            having = list({m['extends'] for m in w.reqs.values()
                           if m['extends'] and m['last'] == 'pending'})
        parent = w.pick(rng, ('active',), lambda m: not m.get('full'), having)
    parent = parent or w.pick(rng, ('active',), lambda m: not m['extends'] and
                              not m.get('full'))
    if parent is None:
        return
    n = 2 if rng.random() < 0.6 else 1
    length = None
    if parent.get('win'):
        length = parse_iso(parent['win'][1]) - parse_iso(parent['win'][0])
    with w.lock:
        quota = min(EXTENSIONS, 2 + EXTENSIONS * w.elapsed() / (RUN_SECONDS - 10))
        n = min(n, EXTENSIONS - w.extensions) if w.extensions < quota else 0
        if n > 0:
            w.extensions += n
            w.extending[parent['id']] += 1
    if n <= 0:
        return op_get(w, rng)
    made = []
    try:
        for _ in range(n):
            lo, hi = 10, 30
            if n == 2 and length is not None:
                # each fits max_duration alone, both together do not
                lo, hi = max(lo, (MAX_DURATION - length) // 2 + 1), min(hi, MAX_DURATION - length)
                if lo > hi:
                    lo, hi = 10, 30
            st, j, a = w.call(parent['requester'], 'POST',
                              '/v1/requests/%s/extend' % parent['id'],
                              {'by': '%ds' % rng.randint(lo, hi)}, 'extend', parent['id'])
            if st != 201:
                with w.lock:
                    w.extensions -= 1
                    if st == 403:      # its window is full: extend others from now on
                        w.reqs[parent['id']]['full'] = True
                continue
            a['new'] = j['id']
            own = rng.random() < 0.85  # approved below (else left to the others, or to lapse)
            w.add(j, quiet=rng.random() < 0.15, extends=parent['id'], owned=own)
            if own:
                made.append(j['id'])
        for xid in made:
            x = w.pick(rng, None, None, [xid])
            voters = approvers_of(x)
            if x['profile'] == 'duo':
                voters = [rng.choice([u for u in voters if u != 'erin']), 'erin']
                rng.shuffle(voters)
            else:
                voters = [rng.choice(voters)]
            for u in voters:
                if not (200 <= approve(w, rng, x, u) < 300):
                    break
            with w.lock:
                w.reqs[xid]['owned'] = False
    finally:
        with w.lock:
            w.extending[parent['id']] -= 1


def op_create(w, rng):
    with w.lock:
        quota = min(MORE_CREATES, MORE_CREATES * w.elapsed() / 40)
        full = w.creates >= quota
        if not full:
            w.creates += 1
    if full:
        return op_get(w, rng)
    if create(w, rng) != 201:
        with w.lock:
            w.creates -= 1


def op_credentials(w, rng):
    m = w.pick(rng, ('active', 'activating') if rng.random() < 0.8 else None,
               lambda m: not m['extends'])
    if m:
        w.call(m['requester'], 'GET', '/v1/requests/%s/credentials' % m['id'], None,
               'credentials', m['id'])


def op_get(w, rng):
    m = w.pick(rng)
    if m:
        user = rng.choice([m['requester'], rng.choice(approvers_of(m)), 'erin', ADMIN])
        w.call(user, 'GET', '/v1/requests/' + m['id'], None, 'get', m['id'])


def op_illegal(w, rng):
    kind = rng.choice(['cancel-other', 'approve-own', 'approve-outsider', 'revoke-pending',
                       'deny-ended', 'approve-twice', 'cancel-active', 'extend-other',
                       'credentials-other', 'extend-too-long', 'revoke-outsider'])
    P = '/v1/requests/%s/'
    if kind == 'cancel-other':
        m = w.pick(rng, ('pending',))
        if m:
            w.call(rng.choice(outsiders_of(m, 'cancel')), 'POST', P % m['id'] + 'cancel', None,
                   'cancel', m['id'], kind, True)
    elif kind == 'approve-own':
        m = w.pick(rng, ('pending',))
        if m:
            approve(w, rng, m, m['requester'], kind, True)
    elif kind == 'approve-outsider':
        m = w.pick(rng, ('pending',))
        if m:
            approve(w, rng, m, rng.choice(outsiders_of(m, 'approve')), kind, True)
    elif kind == 'revoke-pending':
        m = w.pick(rng, ('pending',), lambda m: not m['extends'])
        if m:
            w.call(m['requester'], 'POST', P % m['id'] + 'revoke', {}, 'revoke', m['id'], kind)
    elif kind == 'deny-ended':
        m = w.pick(rng, ('ended', 'ending', 'lapsed', 'cancelled', 'denied', 'failed'))
        if m:
            w.call(rng.choice(approvers_of(m)), 'POST', P % m['id'] + 'deny', {}, 'deny',
                   m['id'], kind)
    elif kind == 'approve-twice':
        with w.lock:
            done = [(r, u) for r, us in w.approved_by.items() for u in us]
        if done:
            rid, u = rng.choice(done)
            m = w.pick(rng, None, None, [rid])
            approve(w, rng, m, u, kind, True)
    elif kind == 'cancel-active':
        m = w.pick(rng, ('active', 'ending', 'ended'))
        if m:
            w.call(m['requester'], 'POST', P % m['id'] + 'cancel', None, 'cancel', m['id'],
                   kind)
    elif kind == 'extend-other':
        m = w.pick(rng, ('active',), lambda m: not m['extends'])
        if m:
            w.call(rng.choice(outsiders_of(m, 'extend')), 'POST', P % m['id'] + 'extend',
                   {'by': '10s'}, 'extend', m['id'], kind, True)
    elif kind == 'credentials-other':
        m = w.pick(rng, ('active',), lambda m: not m['extends'])
        if m:
            w.call(rng.choice(outsiders_of(m, 'credentials')), 'GET',
                   P % m['id'] + 'credentials', None, 'credentials', m['id'], kind, True)
    elif kind == 'extend-too-long':
        m = w.pick(rng, ('active',), lambda m: not m['extends'] and m['win'])
        if m:
            length = parse_iso(m['win'][1]) - parse_iso(m['win'][0])
            by = int(MAX_DURATION - length) + rng.randint(1, 10)   # windows only grow
            w.call(m['requester'], 'POST', P % m['id'] + 'extend', {'by': '%ds' % by},
                   'extend', m['id'], kind, True)
    elif kind == 'revoke-outsider':
        m = w.pick(rng, ('active',), lambda m: not m['extends'])
        if m:
            w.call(rng.choice(outsiders_of(m, 'revoke')), 'POST', P % m['id'] + 'revoke', {},
                   'revoke', m['id'], kind, True)


OPS = [(op_approve, 22), (op_deny, 3), (op_cancel, 6), (op_revoke, 5), (op_extend, 8),
       (op_create, 3), (op_credentials, 12), (op_get, 10), (op_illegal, 14)]


def client(w, seed, deadline, errors):
    rng = random.Random(seed)
    fns = [f for f, _ in OPS]
    weights = [n for _, n in OPS]
    try:
        while time.time() < deadline:
            rng.choices(fns, weights)[0](w, rng)
            time.sleep(rng.uniform(0.01, 0.12))
    except Exception as e:     # a bug in the test itself: report it, do not hide it
        import traceback
        errors.append('client %d: %r\n%s' % (seed, e, traceback.format_exc()))


def faulter(emu, seed, deadline, stop):
    """Latency and throttling faults, changed every few seconds: mostly on AssumeRole
    (activations, extensions, re-mints), sometimes on every AWS call (revocations too)."""
    rng = random.Random(seed)
    while time.time() < deadline and not stop.is_set():
        if rng.random() < 0.65:
            f = {'latency_ms': rng.randint(300, 1500), 'actions': ['AssumeRole']}
        else:
            f = {'latency_ms': rng.randint(200, 600)}
        f.update(throttle_rate=round(rng.uniform(0.2, 0.3), 2), seed=rng.randint(0, 1 << 30))
        emu.faults(**f)
        stop.wait(rng.uniform(4, 8))
    emu.faults()


# ---- the test ----

def test_randomized_schedule(ctx):
    t_begin = time.time()
    table = lifecycle_check.load_table(ROOT)
    _selftest(table)
    seed = int(os.environ.get('ELEVATE_SCHEDULE_SEED') or time.time() * 1000 % 1000000)
    print('     seed %d (ELEVATE_SCHEDULE_SEED=%d replays the clients\' choices)' % (seed, seed),
          flush=True)
    emu = ctx.emulator
    b = ctx.broker(profiles=PROFILES).start()
    rng = random.Random(seed)
    w = World(b, time.time())
    for i in range(INITIAL):
        st = create(w, rng, op='create')
        assert st == 201, 'creating request %d: %s' % (i, w.answers[-1])

    stop = threading.Event()
    emu_since = emu.last_seq()
    t_run = time.time()
    deadline = t_run + RUN_SECONDS
    w.t_start = t_run
    errors = []
    threads = [threading.Thread(target=client, args=(w, seed * 100 + i, deadline, errors),
                                daemon=True) for i in range(CLIENTS)]
    threads.append(threading.Thread(target=faulter, args=(emu, seed * 100 + 99, deadline, stop),
                                    daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1, deadline + 40 - time.time()))
    stop.set()
    emu.faults()
    hung = [t.name for t in threads if t.is_alive()]
    t_ran = time.time()
    assert not errors, 'the test itself failed:\n' + '\n'.join(errors)
    assert not hung, 'clients still running 40 s after the deadline: %s' % hung

    # every window ends: first on its own, then what is left is revoked / cancelled
    def states():
        out = {}
        for rid in list(w.reqs):
            st, j = b.api(ADMIN, 'GET', '/v1/requests/' + rid)
            out[rid] = j if st == 200 else {'state': None, 'error': (st, j)}
        return out

    def settle(seconds):
        end = time.time() + seconds
        while True:
            cur = states()
            live = {r: j['state'] for r, j in cur.items() if j['state'] in LIVE}
            if not live or time.time() >= end:
                return cur, live
            time.sleep(1)

    final, live = settle(SETTLE_SECONDS)
    cleaned = dict(live)
    if live:
        for rid, st in sorted(live.items()):
            m = w.reqs[rid]
            if st == 'pending':
                w.call(m['requester'], 'POST', '/v1/requests/%s/cancel' % rid, None, 'cancel',
                       rid, 'cleanup')
            elif st in ('active', 'activating'):
                w.call(ADMIN, 'POST', '/v1/requests/%s/revoke' % rid, {'reason': 'cleanup'},
                       'revoke', rid, 'cleanup')
        final, live = settle(CLEANUP_SECONDS)
    t_settled = time.time()

    # the summary
    kinds = collections.Counter()
    for a in w.answers:
        kinds[('%s/%s' % (a['op'], a['intent']) if a['intent'] != 'legal' else a['op'],
               a['status'])] += 1
    ops = collections.defaultdict(dict)
    for (k, s), n in kinds.items():
        ops[k][s] = n
    print('     %d requests (%d extensions), %d answers in %.0fs run + %.0fs settle' % (
        len(w.reqs), sum(1 for m in w.reqs.values() if m['extends']), len(w.answers),
        t_ran - t_run, t_settled - t_ran))
    for k in sorted(ops):
        print('       %-29s %s' % (k, ' '.join('%s:%d' % sn for sn in sorted(ops[k].items()))))
    print('     final states: %s' % dict(collections.Counter(j['state'] for j in final.values())))
    if cleaned:
        print('     still live after %ds (revoked/cancelled by the test): %s' % (
            SETTLE_SECONDS, cleaned))
    calls = emu.log_entries(emu_since)
    faulted = [e for e in calls if e.get('error_code') in
               ('Throttling', 'ThrottlingException', 'RequestLimitExceeded')]
    print('     emulator: %d AWS calls, %d throttled' % (len(calls), len(faulted)))
    acked = [a for a in w.answers if a['op'] == 'approve' and _ok(a)]
    races = collections.Counter(
        '%s %s' % (a['op'], a['status']) for a in w.answers
        if a['op'] in ('cancel', 'deny', 'revoke') and a['intent'] == 'legal' and
        any(x['rid'] == a['rid'] and x['t0'] < a['t1'] and a['t0'] < x['t1'] for x in acked))
    print('     answered while an approval of the same request was in flight: %s' % dict(races))
    print('     failures: %s' % dict(collections.Counter(
        (j.get('failure') or {}).get('code') for j in final.values() if j['state'] == 'failed')))
    alive = b.proc is not None and b.proc.poll() is None

    with open(os.path.join(b.tmp, 'schedule-answers.json'), 'w') as f:
        json.dump({'seed': seed, 'answers': w.answers, 'final': final}, f, indent=0)
    print('     answers and final states: %s' % os.path.join(b.tmp, 'schedule-answers.json'))

    # the audit, read after the daemon stopped (its export and last checkpoint are written)
    b.stop()
    every = b.audit()
    audits = collections.defaultdict(list)
    for r in every:
        if r['request_id']:
            audits[r['request_id']].append(r)
    pub = open(os.path.join(b.state_dir, 'audit.pub')).read().strip()
    verify = b.cli('erin', 'audit', 'verify', b.audit_file, '--pubkey', pub)

    checks = [
        ('1. answers agree with the final state', check_answers(w.answers, final, table)),
        ('2. no credentials without a grant', check_credentials(w.answers, final)),
        ('3. audit histories are paths through the table',
         check_histories(dict(audits), final, table)),
        ('4. the audit verifies', [] if verify.returncode == 0 else
         [('elevate audit verify exited %d' % verify.returncode, b.audit_file,
           (verify.stdout[-1500:] + verify.stderr[-1500:]).strip())]),
        ('5. no window exceeds max_duration',
         check_windows(final, w.answers, audits, {p: MAX_DURATION for p in PROFILES})),
        ('5b. extensions move the window by their amount, once, while active',
         check_extensions(final, audits)),
        ('every request settled', [('still live', r, '%s is still %s' % (r, s))
                                   for r, s in sorted(live.items())]),
        ('the daemon answered every call', ([] if alive else [('elevated exited', None, '')]) +
         [('no answer' if a['status'] == 0 else 'HTTP 500', a['rid'], _fmt(a))
          for a in w.answers if a['status'] in (0, 500)]),
    ]
    failed = []
    for name, probs in checks:
        print('     check %s: %s' % (name, 'ok' if not probs else '%d problem(s)' % len(probs)))
        if probs:
            failed.append(report(name, probs))
    print('     wall time %.0fs (seed %d)' % (time.time() - t_begin, seed), flush=True)
    assert not failed, 'seed %d:\n' % seed + '\n'.join(failed)
