#!/usr/bin/python3
"""Kill -9 soak: many grants with random windows while the daemon is killed with SIGKILL
at random moments, the SMTP server goes away and comes back, and AWS throttles and fails.

    /usr/bin/python3 tests/soak/soak.py            # full: 200 grants, 20-120 s, >= 10 kills (<= 6 min)
    /usr/bin/python3 tests/soak/soak.py --short    # 30 grants, 10-30 s, >= 3 kills (~90 s)
    ... [--seed N] [--keep] [--inject dup-mail|live-creds|stall|no-restart]

It starts its own AWS emulator, SMTP server (aiosmtpd) and elevated (tests/integration/
harness.py). At the end, with the daemon up and the faults off, it checks:
  1. every grant (a request that became active) is ended, its grant.ended record within 2 s
     of max(window end, the restart if the daemon was down then or was killed before it
     could end the grant, the end of an AWS fault burst under way then); late_ms per
     grant, p99 reported
  2. the grant's credentials worked during the window and the emulator refuses them after
     its end (shortly after, and again at the end of the run)
  3. every mail in the outbox arrived exactly once (by Message-ID), nothing left queued or
     failed, each request's approval requests and the grant's "ended" notice queued once
  4. `elevate audit verify` accepts the exported audit file, which holds every record
  5. each request's transition records are a path through docs/lifecycle.md, each once
  6. every request became a grant (nothing failed or stuck: AWS faults are transient)
and prints `soak kills=N grants=N late_p99_ms=... lost=N dup_mail=N resent_after_kill=N`,
then
`N passed, N failed` (checks). Exit 0 only when every check passed.

--inject breaks one thing on purpose, to show the checks can fail: dup-mail delivers one
sent mail a second time (check 3), live-creds keeps the broker's own keys as one grant's
credentials (check 2), stall SIGSTOPs the daemon for 4 s across a window end (check 1),
no-restart leaves the daemon down after its last kill (checks 1, 3, ...).
"""
import argparse
import email.parser
import heapq
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))
import harness  # noqa: E402
from lifecycle_check import load_table, check_history  # noqa: E402

REFUSED = {'AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'ExpiredToken',
           'ExpiredTokenException', 'InvalidClientTokenId'}
LIVE = ('pending', 'activating', 'active', 'ending')
LATE_LIMIT_MS = 2000
START_T = time.time()


def log(msg):
    print('  [%6.1f] %s' % (time.time() - START_T, msg), flush=True)


def audit_time(s):
    """'2026-12-01T15:18:34.003Z' -> epoch seconds (float)."""
    s = s.rstrip('Z')
    fmt = '%Y-%m-%dT%H:%M:%S.%f' if '.' in s else '%Y-%m-%dT%H:%M:%S'
    return datetime.strptime(s, fmt).replace(tzinfo=timezone.utc).timestamp()


def grouped(problems):
    """'RID: text (seq N) ...' problems, the same text for many requests said once."""
    import re
    groups = {}
    for x in problems:
        rid, _, text = x.partition(': ')
        groups.setdefault(re.sub(r' \(seq \d+\)', '', text), []).append(rid)
    return ['%d request(s), e.g. %s: %s' % (len(rids), rids[0], text) if len(rids) > 1 else
            '%s: %s' % (rids[0], text) for text, rids in groups.items()]


def pctl(vals, p):
    if not vals:
        return 0
    v = sorted(vals)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))   # nearest rank
    return v[k]


class Timeline:
    """When the daemon was down: [(kill time, restart time or None)], and when AWS refused
    calls in a fault burst: [(start, end or None)]."""

    def __init__(self):
        self.downs = []
        self.outages = []
        self.lock = threading.Lock()

    def aws_faults(self, t, on):
        with self.lock:
            if on and (not self.outages or self.outages[-1][1] is not None):
                self.outages.append([t, None])
            elif not on and self.outages and self.outages[-1][1] is None:
                self.outages[-1][1] = t

    def killed(self, t):
        with self.lock:
            self.downs.append([t, None])

    def restarted(self, t):
        with self.lock:
            self.downs[-1][1] = t

    def is_down(self):
        with self.lock:
            return bool(self.downs) and self.downs[-1][1] is None

    def reference(self, window_end, ended_at):
        """The moment the grant's end is measured from: its window end, moved to the
        restart when the daemon was down then, or was killed within the 2 s it had to end
        the grant (and before it did); likewise to the end of an AWS fault burst (nobody
        can terminate a session while AWS refuses: the broker retries every second and
        must be done within 2 s of AWS answering again)."""
        ref = window_end
        for _ in range(len(self.downs) + len(self.outages) + 1):
            moved = False
            for k, r in self.downs + self.outages:
                rr = r if r is not None else max(time.time(), k)
                if k <= ref < rr:                                      # down at ref
                    ref, moved = rr, True
                    break
                if ref < k < ref + LATE_LIMIT_MS / 1000.0 and (ended_at is None or k < ended_at):
                    ref, moved = rr, True                              # killed while ending
                    break
            if not moved:
                break
        return ref


class Sched:
    """Timed tasks run by a few worker threads."""

    def __init__(self, nworkers, errors):
        self.heap, self.seq, self.running = [], 0, 0
        self.cv = threading.Condition()
        self.stopping = False
        self.errors = errors
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(nworkers)]
        for t in self.threads:
            t.start()

    def at(self, t, fn, *args):
        with self.cv:
            self.seq += 1
            heapq.heappush(self.heap, (t, self.seq, fn, args))
            self.cv.notify()

    def after(self, dt, fn, *args):
        self.at(time.time() + dt, fn, *args)

    def idle(self):
        with self.cv:
            return not self.heap and self.running == 0

    def stop(self):
        with self.cv:
            self.stopping = True
            self.cv.notify_all()

    def _work(self):
        while True:
            with self.cv:
                while not self.stopping and (not self.heap or self.heap[0][0] > time.time()):
                    self.cv.wait(min(0.5, self.heap[0][0] - time.time()) if self.heap else 0.5)
                if self.stopping:
                    return
                _, _, fn, args = heapq.heappop(self.heap)
                self.running += 1
            try:
                fn(*args)
            except Exception:
                self.errors.append('%s%r: %s' % (fn.__name__, args, traceback.format_exc()))
            finally:
                with self.cv:
                    self.running -= 1


class Soak:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        short = a.short
        self.n = a.grants or (30 if short else 200)
        self.wmin, self.wmax = (10, 30) if short else (20, 120)
        self.span = 35 if short else 140           # creations spread over this many seconds
        self.nkills = a.kills or (4 if short else 12)
        self.tmp = tempfile.mkdtemp(prefix='elevate-soak-')
        self.errors = []                           # harness/test errors (a failed check)
        self.tl = Timeline()
        self.lock = threading.Lock()
        self.reqs = {}          # rid -> dict(i, user, creds, works=[(t, code)], post=[...])
        self.by_reason = {}
        self.kill_states = []   # per kill: {state: count} of live requests at the kill
        self.kill_kinds = []
        self.approve_signal = None
        self.done_creating = threading.Event()
        self.botocore_lock = threading.Lock()
        import botocore.session
        self.bsession = botocore.session.get_session()

    # ---- setup ----
    def profiles(self):
        base = {'region': 'ap-northeast-1', 'requesters': ['group:engineers'],
                'approvers': ['group:sre-leads'], 'approvals_required': 1,
                'default_duration': '1m', 'max_duration': '5m', 'pending_ttl': '30m',
                'reason_required': False}
        return {'soak-dev': dict(base, role_arn='arn:aws:iam::%s:role/Dev' % harness.ACCOUNT),
                'soak-ro': dict(base, role_arn='arn:aws:iam::%s:role/ProdReadOnly'
                                % harness.ACCOUNT)}

    def setup(self):
        self.emu = harness.Emulator(self.tmp).start()
        self.smtp = harness.SMTPServer(self.tmp).start()
        self.b = harness.Broker(self.emu, tmp=self.tmp, profiles=self.profiles(),
                                smtp_port=self.smtp.port,
                                config={'log': {'level': 'info'}})
        self.b.start()
        self.t0 = time.time()

    def db(self):
        c = sqlite3.connect(os.path.join(self.b.state_dir, 'elevate.db'), timeout=10)
        c.execute('PRAGMA busy_timeout=10000')
        return c

    def query(self, sql, args=()):
        for attempt in range(20):
            try:
                c = self.db()
                try:
                    return c.execute(sql, args).fetchall()
                finally:
                    c.close()
            except sqlite3.OperationalError:
                if attempt == 19:
                    raise
                time.sleep(0.1)

    def state_of(self, rid):
        r = self.query('SELECT state, window_end FROM requests WHERE id = ?', (rid,))
        return (r[0][0], r[0][1]) if r else (None, None)

    def call(self, user, method, path, body=None):
        try:
            return self.b.api(user, method, path, body)
        except Exception as e:               # connection refused/reset while it is down
            return None, str(e)

    # ---- the driver: create, approve, fetch and try the credentials ----
    def create(self, i, spec):
        body = {'profile': spec['profile'], 'duration': '%ds' % spec['window'],
                'reason': spec['reason']}
        st, j = self.call(spec['user'], 'POST', '/v1/requests', body)
        if st == 201:
            return self.created(i, spec, j['id'])
        if st is not None and 400 <= st < 500 and st not in (408, 409, 429):
            self.errors.append('create %d: %s %s' % (i, st, j))
            return
        self.sched.after(0.5, self.find_or_create, i, spec)

    def find_or_create(self, i, spec):
        """After a failed POST: did it commit before the daemon died?"""
        rows = self.query('SELECT id FROM requests WHERE reason = ?', (spec['reason'],))
        if rows:
            return self.created(i, spec, rows[0][0])
        if self.tl.is_down():
            return self.sched.after(0.5, self.find_or_create, i, spec)
        self.create(i, spec)

    def created(self, i, spec, rid):
        with self.lock:
            if spec['reason'] in self.by_reason:
                return
            self.by_reason[spec['reason']] = rid
            self.reqs[rid] = {'i': i, 'user': spec['user'], 'creds': None, 'works': [],
                              'post': [], 'approver': spec['approver'], 'window': spec['window']}
            if len(self.reqs) == self.n:
                self.done_creating.set()
        self.sched.after(self.rng.uniform(0, 4), self.approve, rid)

    def approve(self, rid):
        r = self.reqs[rid]
        sig = self.approve_signal
        if sig is not None:
            sig.set()
        st, d = self.call(r['approver'], 'POST', '/v1/requests/%s/approve' % rid, {})
        if st == 200:
            r['approved_at'] = time.time()
            return self.sched.after(0.05, self.fetch_creds, rid)
        state, _ = self.state_of(rid)
        if state == 'pending':
            return self.sched.after(0.5, self.approve, rid)
        r['approve_answer'] = (st, d)
        self.sched.after(0.05, self.fetch_creds, rid)

    def fetch_creds(self, rid):
        r = self.reqs[rid]
        st, c = self.call(r['user'], 'GET', '/v1/requests/%s/credentials' % rid)
        if st == 200 and isinstance(c, dict) and c.get('AccessKeyId'):
            r['creds'] = c
            r['creds_at'] = time.time()
            return self.try_creds(rid, 'works')
        state, we = self.state_of(rid)
        if state in ('pending', 'activating') or (state == 'active' and
                                                   (we is None or time.time() < we - 1)):
            return self.sched.after(0.3, self.fetch_creds, rid)
        r['no_creds'] = 'state %s, last answer %s %s' % (state, st, str(c)[:200])

    def describe(self, creds):
        import botocore.exceptions
        from botocore.config import Config
        with self.botocore_lock:
            ec2 = self.bsession.create_client(
                'ec2', region_name='ap-northeast-1', endpoint_url=self.emu.url,
                aws_access_key_id=creds['AccessKeyId'],
                aws_secret_access_key=creds['SecretAccessKey'],
                aws_session_token=creds.get('SessionToken'),
                config=Config(retries={'max_attempts': 2}, connect_timeout=5, read_timeout=10))
        try:
            ec2.describe_instances()
            return 'ok'
        except botocore.exceptions.ClientError as e:
            return e.response['Error']['Code']
        except Exception as e:
            return 'error: %s' % e

    def try_creds(self, rid, what):
        r = self.reqs[rid]
        t = time.time()
        code = self.describe(r['creds'])
        r[what].append((t, time.time(), code))
        _, we = self.state_of(rid)
        if what == 'works':
            if code != 'ok' and we is not None and time.time() < we - 1 and len(r['works']) < 5:
                self.sched.after(0.5, self.try_creds, rid, 'works')
            elif we is not None:                 # shortly after the end: refused already?
                self.sched.at(we + 2.5, self.try_creds, rid, 'post')

    # ---- chaos ----
    def chaos_plan(self):
        """[(time offset, kind, arg)] for kills, SMTP outages and AWS fault bursts."""
        end = self.span + 4 + self.wmax                # about when the last window ends
        kills, gap = [], 9.0
        for _ in range(10000):
            if len(kills) == self.nkills:
                break
            t = self.rng.uniform(3, end)
            if all(abs(t - k) >= gap for k in kills):
                kills.append(t)
        if len(kills) < self.nkills:
            kills = [3 + (end - 3) * (k + 0.5) / self.nkills for k in range(self.nkills)]
        kinds = ['random', 'window_end', 'approve']
        plan = [(t, 'kill', kinds[k % 3]) for k, t in enumerate(sorted(kills))]
        # SMTP outages early enough for the outbox's backoff to drain before the end
        outs = [(0.15, 6 if self.a.short else 10)] + ([] if self.a.short else [(0.45, 10)])
        for frac, dur in outs:
            t = self.rng.uniform(0.8, 1.2) * frac * end
            plan += [(t, 'smtp_stop', None), (t + dur, 'smtp_start', None)]
        # (--inject stall proves the lateness check can fail: no fault burst may excuse it)
        t = 5.0 if self.a.inject != 'stall' else end
        while t < end:
            dur = self.rng.uniform(2, 5)
            kind = self.rng.choice(['throttle', 'error', 'both'])
            plan += [(t, 'faults', kind), (t + dur, 'faults', None)]
            t += dur + self.rng.uniform(8, 20)
        if self.a.inject == 'stall':
            plan.append((end * 0.5, 'stall', 4.0))
        return sorted(plan, key=lambda p: p[0])

    def daemon_pids(self):
        """elevated's processes: the parent we started and its children."""
        root = self.b.proc.pid
        pids = [root]
        for d in os.listdir('/proc'):
            if d.isdigit():
                try:
                    with open('/proc/%s/stat' % d) as f:
                        if int(f.read().rsplit(')', 1)[1].split()[1]) == root:
                            pids.append(int(d))
                except (OSError, IndexError, ValueError):
                    pass
        return pids

    def live_states(self):
        rows = self.query("SELECT state, COUNT(*) FROM requests GROUP BY state")
        return {s: n for s, n in rows if s in LIVE}

    def next_window_end(self, within):
        now = time.time()
        rows = self.query("SELECT MIN(window_end) FROM requests WHERE state = 'active' AND "
                          "window_end > ? AND window_end < ?", (now + 0.2, now + within))
        return rows[0][0] if rows and rows[0][0] else None

    def kill(self, kind):
        if kind == 'window_end':
            we = self.next_window_end(15)
            if we:
                time.sleep(max(0, we - time.time() + self.rng.uniform(-0.005, 0.03)))
        elif kind == 'approve' and not (self.done_creating.is_set() and
                                        not self.live_states().get('pending')):
            ev = threading.Event()
            self.approve_signal = ev
            ev.wait(10)
            self.approve_signal = None
            time.sleep(self.rng.uniform(0, 0.02))
        self.b.kill9()
        t = time.time()
        self.tl.killed(t)
        self.kill_kinds.append(kind)
        self.kill_states.append(self.live_states())
        log('kill -9 #%d (%s): live requests %s' % (len(self.kill_kinds), kind,
                                                    self.kill_states[-1]))

    def restart(self):
        for attempt in range(5):
            t = time.time()
            try:
                self.b.start()
                self.tl.restarted(t)
                return True
            except AssertionError as e:
                self.errors.append('restart %d failed: %s' % (attempt + 1, str(e)[-500:]))
                if self.b.proc is not None:
                    self.b.kill9()
                time.sleep(1)
        return False

    def chaos(self, plan):
        nkills = sum(1 for p in plan if p[1] == 'kill')
        try:
            self._chaos(plan, nkills)
        except Exception:
            self.errors.append('chaos: ' + traceback.format_exc())
        finally:
            try:
                self.emu.faults()
            except Exception:
                pass
            if self.smtp.proc is None:
                self.smtp.start()
            if self.tl.is_down() and self.a.inject != 'no-restart':
                self.restart()

    def _chaos(self, plan, nkills):
        heap = [(self.t0 + t, k, kind, arg) for k, (t, kind, arg) in enumerate(plan)]
        heapq.heapify(heap)
        seq, kills = len(heap), 0
        while heap:
            t, _, kind, arg = heapq.heappop(heap)
            time.sleep(max(0, t - time.time()))
            if kind == 'kill':
                if self.tl.is_down():            # an earlier kill is not over: try again
                    seq += 1
                    heapq.heappush(heap, (time.time() + 1, seq, kind, arg))
                    continue
                self.kill(arg)
                kills += 1
                if self.a.inject == 'no-restart' and kills == nkills:
                    log('inject no-restart: the daemon stays down')
                    continue
                seq += 1
                heapq.heappush(heap, (time.time() + self.rng.uniform(0.5, 5), seq,
                                      'restart', None))
            elif kind == 'restart':
                if not self.restart():
                    return
                log('restarted after %.1f s' % (self.tl.downs[-1][1] - self.tl.downs[-1][0]))
            elif kind == 'smtp_stop':
                self.smtp.stop()
                log('SMTP server stopped')
            elif kind == 'smtp_start':
                self.smtp.start()
                log('SMTP server back on port %d' % self.smtp.port)
            elif kind == 'faults':
                f = {'services': ['sts', 'iam', 'ssm']}
                if arg in ('throttle', 'both'):
                    f['throttle_rate'] = 0.5
                if arg in ('error', 'both'):
                    f['error_rate'] = 0.3
                self.emu.faults(**f)
                self.tl.aws_faults(time.time(), bool(arg))
                if arg:
                    log('AWS faults: %s' % arg)
            elif kind == 'stall':
                if self.tl.is_down():
                    continue
                we = self.next_window_end(15)
                if we:
                    time.sleep(max(0, we - time.time() - 0.5))
                pids = self.daemon_pids()
                for p in pids:
                    os.kill(p, signal.SIGSTOP)
                log('inject stall: SIGSTOP %s for %.0f s' % (pids, arg))
                time.sleep(arg)
                for p in pids:
                    os.kill(p, signal.SIGCONT)

    # ---- the run ----
    def run(self):
        self.setup()
        log('tmp %s, seed %s, %d grants, windows %d-%d s, %d kills planned' % (
            self.tmp, self.a.seed, self.n, self.wmin, self.wmax, self.nkills))
        self.sched = Sched(6, self.errors)
        users, approvers = ['alice', 'bob'], ['carol', 'dave']
        for i in range(self.n):
            spec = {'user': self.rng.choice(users), 'approver': self.rng.choice(approvers),
                    'profile': self.rng.choice(['soak-dev', 'soak-ro']),
                    'window': self.rng.randint(self.wmin, self.wmax),
                    'reason': 'soak #%d %08x' % (i, self.rng.getrandbits(32))}
            self.sched.at(self.t0 + 1 + self.rng.uniform(0, self.span), self.create, i, spec)
        plan = self.chaos_plan()
        chaos = threading.Thread(target=self.chaos, args=(plan,), daemon=True)
        chaos.start()
        # every request created, every approval landed, then every window over
        budget = self.span + self.wmax + 120
        if not self.done_creating.wait(budget):
            self.errors.append('only %d of %d requests were created' % (len(self.reqs), self.n))
        end = time.time() + budget
        while time.time() < end and not (self.sched.idle() or self.past_every_end()):
            time.sleep(0.5)
        chaos.join(max(1, end - time.time()))
        if chaos.is_alive():
            self.errors.append('the chaos thread did not finish')
        self.emu.faults()
        last = self.last_window_end()
        time.sleep(max(0, last + 3 - time.time()))
        deadline = time.time() + 30
        while time.time() < deadline and (self.query(
                "SELECT COUNT(*) FROM requests WHERE state IN ('activating','active','ending')"
                )[0][0] or not self.sched.idle()):
            time.sleep(0.5)
        self.wait_mail()
        self.sched.stop()
        if self.a.inject == 'live-creds':
            rid = next(r for r, v in sorted(self.reqs.items()) if v['creds'])
            self.reqs[rid]['creds'] = {'AccessKeyId': harness.BROKER_KEY,
                                       'SecretAccessKey': harness.BROKER_SECRET}
            log('inject live-creds: %s keeps the broker\'s own keys' % rid)
        if self.a.inject == 'dup-mail':
            self.redeliver_one()
        return self.checks()

    def last_window_end(self):
        rows = self.query("SELECT MAX(window_end) FROM requests")
        return rows[0][0] or time.time()

    def past_every_end(self):
        return time.time() > self.last_window_end() + 30

    def wait_mail(self):
        deadline = time.time() + 45
        while time.time() < deadline:
            if not self.query("SELECT COUNT(*) FROM outbox WHERE state = 'queued'")[0][0]:
                return
            time.sleep(0.5)

    def redeliver_one(self):
        import smtplib
        name = sorted(n for n in os.listdir(self.smtp.dir) if n.endswith('.eml'))[0]
        raw = open(os.path.join(self.smtp.dir, name), 'rb').read()
        meta = json.load(open(os.path.join(self.smtp.dir, name[:-4] + '.json')))
        with smtplib.SMTP('127.0.0.1', self.smtp.port) as s:
            s.sendmail(meta['from'], meta['rcpt'], raw)
        time.sleep(0.5)
        log('inject dup-mail: %s delivered again' % name)

    # ---- checks ----
    def checks(self):
        results = []

        def check(name, problems, detail=''):
            ok = not problems
            results.append(ok)
            print('%s %s%s' % ('ok  ' if ok else 'FAIL', name, (': ' + detail) if detail else ''),
                  flush=True)
            for p in problems[:12]:
                print('       ' + p, flush=True)
            if len(problems) > 12:
                print('       ... and %d more' % (len(problems) - 12), flush=True)

        daemon_up = self.b.proc is not None and self.b.proc.poll() is None
        rows = self.query('SELECT id, state, window_start, window_end, failure_code, '
                          'failure_message FROM requests')
        dbreq = {r[0]: r for r in rows}
        audit = self.b.audit()
        per = {}
        for rec in audit:
            if rec['request_id']:
                per.setdefault(rec['request_id'], []).append(rec)
        grants = sorted(rid for rid in self.reqs if dbreq.get(rid) and (
            dbreq[rid][2] is not None or
            any(x['event'] == 'grant.activated' for x in per.get(rid, []))))
        kills = len(self.tl.downs)

        # 0. the run itself
        p = ['test error: ' + e.strip().splitlines()[-1] for e in self.errors]
        p += ['%d kills, fewer than %d' % (kills, self.nkills)] if kills < self.nkills else []
        p += [] if daemon_up else ['the daemon is not running at the end']
        p += ['%d of %d requests created' % (len(self.reqs), self.n)] if len(self.reqs) < self.n else []
        for e in self.errors:
            sys.stderr.write(e + '\n')
        check('run', p, '%d kills (%s), %d requests, %d grants; live requests at the kills: %s'
              % (kills, ', '.join(self.kill_kinds), len(self.reqs), len(grants),
                 self.kill_summary()))

        # 1. every grant ended on time
        p, late, moved = [], [], 0
        for rid in grants:
            st, we = dbreq[rid][1], dbreq[rid][3]
            ends = [x for x in per.get(rid, []) if x['event'] == 'grant.ended']
            if st != 'ended' or not ends:
                p.append('%s is %s (window end %s), %d grant.ended records' % (
                    rid, st, harness.iso(we) if we else None, len(ends)))
                continue
            t_end = audit_time(ends[0]['time'])
            ref = self.tl.reference(we, t_end)
            moved += ref != we
            # Ended while the daemon was down or AWS refused (the excuse ran past the
            # end): not late. Early is judged against the window end itself.
            ms = (t_end - ref) * 1000.0 if ref == we else max(0.0, (t_end - ref) * 1000.0)
            late.append(ms)
            self.reqs[rid]['late_ms'] = ms
            if ms > LATE_LIMIT_MS:
                p.append('%s ended %.0f ms after %s (window end %s%s)' % (
                    rid, ms, harness.iso(ref), harness.iso(we),
                    ', moved by a restart or an AWS fault burst' if ref != we else ''))
            elif (t_end - we) * 1000.0 < -250:
                p.append('%s ended %.0f ms before its window end' % (rid, (we - t_end) * 1000))
        self.late_p99 = pctl(late, 99)
        check('grants end within 2 s', p, '%d/%d ended, late_ms p50 %.0f p99 %.0f max %.0f; '
              '%d measured from a restart or a fault burst' % (
                  len(late), len(grants), pctl(late, 50), self.late_p99, max(late or [0]),
                  moved))

        # 2. credentials worked in the window, refused after it
        p, n_ok = [], 0
        for rid in grants:
            r = self.reqs[rid]
            we = dbreq[rid][3]
            if not r['creds']:
                p.append('%s: no credentials fetched while active (%s)' % (
                    rid, r.get('no_creds', 'never tried')))
                continue
            worked = [w for w in r['works'] if w[2] == 'ok' and w[1] <= we]
            if not worked:
                p.append('%s: its credentials never worked in the window: %s' % (
                    rid, [w[2] for w in r['works']][:3]))
            post = r['post']
            if not post:
                p.append('%s: credentials not tried shortly after the window end' % rid)
            elif post[0][2] not in REFUSED:
                p.append('%s: 2.5 s after the window end the emulator answered %s' % (
                    rid, post[0][2]))
            code = self.describe(r['creds'])
            if code not in REFUSED:
                p.append('%s: at the end of the run the emulator answered %s' % (rid, code))
            elif worked and post:
                n_ok += 1
        check('credentials refused after the end', p, '%d/%d grants' % (n_ok, len(grants)))

        # 3. mail: each sent once, nothing lost
        p, lost, dup = self.mail_check(grants)
        self.lost, self.dup = lost, dup
        check('mail exactly once', p, 'lost=%d dup=%d (%s)' % (lost, dup, self.mail_detail))

        # 4. the audit verifies
        p = []
        rc = self.b.stop()                  # SIGTERM: the daemon writes a signed checkpoint
        if not daemon_up:
            p.append('the daemon was not running (rc %s)' % rc)
        r = subprocess.run([os.path.join(harness.BIN, 'elevate'), 'audit', 'verify',
                            self.b.audit_file, '--pubkey-file',
                            os.path.join(self.b.state_dir, 'audit.pub')],
                           capture_output=True, text=True, timeout=120)
        out = (r.stdout + r.stderr).strip()
        if r.returncode != 0 or 'audit OK' not in r.stdout:
            p.append('elevate audit verify: rc %d: %s' % (r.returncode, out[-500:]))
        try:
            fseq = [json.loads(x)['seq'] for x in open(self.b.audit_file) if x.strip()]
        except (OSError, ValueError) as e:
            fseq = []
            p.append('audit file unreadable: %s' % e)
        dbmax = self.query('SELECT MAX(seq) FROM audit')[0][0]
        if fseq and fseq[-1] != dbmax:
            p.append('the audit file ends at seq %s, the store at %s' % (fseq[-1], dbmax))
        if fseq != sorted(set(fseq)):
            p.append('the audit file repeats or reorders seqs')
        check('audit verifies', p, out.splitlines()[-1] if out else '')

        # 5. transitions
        p = []
        table = load_table(ROOT)
        for rid in sorted(self.reqs):
            pr = check_history(per.get(rid, []), table,
                               final_state=dbreq[rid][1] if rid in dbreq else None)
            p += ['%s: %s' % (rid, x) for x in pr]
        p = grouped(p)
        check('each transition recorded once', p, '%d requests, from/to in every transition '
              'record' % len(self.reqs))

        # 6. every request became a grant
        p = []
        for rid in sorted(self.reqs):
            if rid not in grants:
                row = dbreq.get(rid)
                p.append('%s: %s %s %s; approve answered %s' % (
                    rid, row and row[1], row and row[4], row and row[5],
                    str(self.reqs[rid].get('approve_answer'))[:200]))
        check('every request became a grant', p, '%d/%d' % (len(grants), len(self.reqs)))

        print('soak kills=%d grants=%d late_p99_ms=%.0f lost=%d dup_mail=%d '
              'resent_after_kill=%d' % (kills, len(grants), self.late_p99, self.lost, self.dup,
                                        self.resent_after_kill), flush=True)
        return results

    def kill_summary(self):
        hit = {}
        for s in self.kill_states:
            for k, v in s.items():
                if v:
                    hit[k] = hit.get(k, 0) + 1
        return ', '.join('%s in %d' % (k, hit[k]) for k in LIVE if k in hit) or 'none'

    def mail_check(self, grants):
        p = []
        rows = self.query('SELECT id, request_id, rcpt, state, message_id, attempts, last_error '
                          'FROM outbox')
        got, when = {}, {}
        parser = email.parser.BytesHeaderParser()
        for name in os.listdir(self.smtp.dir):
            if name.endswith('.eml'):
                with open(os.path.join(self.smtp.dir, name), 'rb') as f:
                    mid = parser.parse(f).get('Message-ID', '').strip()
                got[mid] = got.get(mid, 0) + 1
                # smtp_sink names each file N-<receipt time in ms>
                when.setdefault(mid, []).append(int(name[:-4].split('-')[1]) / 1000.0)
        lost = dup = resent = double = 0
        self.resent_after_kill = 0
        known = set()
        kinds = {}
        for oid, rid, rcpt, state, mid, attempts, err in rows:
            known.add(mid)
            n = got.get(mid, 0)
            if state != 'sent':
                lost += 1
                p.append('outbox %d (%s to %s) is %s after %d attempts: %s' % (
                    oid, mid, rcpt, state, attempts, err))
            elif n == 0:
                lost += 1
                p.append('outbox %d %s to %s: sent, never arrived' % (oid, mid, rcpt))
            if n > 1 and self.died_after_acceptance(sorted(when[mid])):
                # SMTP is at-least-once across a crash: the server said 250, the daemon was
                # killed before it could record "sent", the restart sent it again with the
                # same Message-ID (receivers deduplicate on it). Counted apart, not hidden.
                self.resent_after_kill += n - 1
            elif n > 1:
                dup += n - 1
                resent += n - 1
                p.append('%s arrived %d times' % (mid, n))
            tmpl = (mid or '<?').lstrip('<').split('.')[0]
            kinds.setdefault((rid, tmpl, rcpt), []).append(oid)
        for mid, n in got.items():
            if mid not in known:
                dup += n
                p.append('%s arrived %d time(s), not in the outbox' % (mid, n))
        for (rid, tmpl, rcpt), ids in kinds.items():
            if rid is not None and len(ids) > 1:
                dup += len(ids) - 1
                double += len(ids) - 1
                p.append('%s: %d "%s" mails to %s queued (outbox %s)' % (rid, len(ids), tmpl,
                                                                       rcpt, ids))
        for rid in self.reqs:
            for who in ('carol', 'dave'):
                if (rid, 'approval_request', '%s@example.com' % who) not in kinds:
                    lost += 1
                    p.append('%s: no approval request queued for %s' % (rid, who))
        for rid in grants:
            rcpt = '%s@example.com' % self.reqs[rid]['user']
            if (rid, 'ended', rcpt) not in kinds:
                lost += 1
                p.append('%s: no "ended" notice queued for %s' % (rid, rcpt))
        self.mail_detail = ('%d mails in the outbox; %d same Message-ID delivered again, %d '
                            'duplicate notices; %d resent because the daemon was killed '
                            'between the SMTP server\'s acceptance and recording it' % (
                                len(rows), resent, double, self.resent_after_kill))
        return p, lost, dup

    def died_after_acceptance(self, times):
        """Each later copy follows a kill that came within a second after the copy before
        it was accepted (the daemon's window between SMTP's 250 and its commit is
        milliseconds; a second covers the test's own timing), and a restart."""
        for prev, nxt in zip(times, times[1:]):
            if not any(prev <= k <= prev + 1.0 and r is not None and r <= nxt + 0.5
                       for k, r in self.tl.downs):
                return False
        return True

    def cleanup(self):
        for fn in (self.b.stop if hasattr(self, 'b') else None,
                   self.smtp.stop if hasattr(self, 'smtp') else None,
                   self.emu.stop if hasattr(self, 'emu') else None):
            try:
                if fn:
                    fn()
            except Exception:
                pass
        if self.a.keep:
            print('  kept %s' % self.tmp, flush=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--short', action='store_true', help='the short form for make test')
    ap.add_argument('--seed', type=int, default=None)
    ap.add_argument('--grants', type=int, default=0, help='override the number of grants')
    ap.add_argument('--kills', type=int, default=0, help='override the number of kills')
    ap.add_argument('--keep', action='store_true', help='keep the temporary directory')
    ap.add_argument('--inject', choices=['dup-mail', 'live-creds', 'stall', 'no-restart'],
                    help='break one thing on purpose: the matching check must fail')
    a = ap.parse_args()
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1 << 31)
    s = Soak(a)
    results = []
    try:
        results = s.run()
    except Exception:
        traceback.print_exc()
        print('FAIL soak: %s' % traceback.format_exc().strip().splitlines()[-1], flush=True)
        results = [r for r in results] + [False]
    finally:
        if not results or not all(results):
            a.keep = True
        s.cleanup()
    passed = sum(1 for r in results if r)
    failed = len(results) - passed
    print('wall %.0f s, seed %d' % (time.time() - START_T, a.seed))
    print('%d passed, %d failed' % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == '__main__':
    sys.exit(main())
