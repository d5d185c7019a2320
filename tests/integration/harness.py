"""Integration harness: starts the real bin/elevated against the AWS emulator (and a real
SMTP server when asked) on loopback with a temporary state dir, and drives bin/elevate as
real users with their own keys. Standard library + Debian's python3-cryptography."""

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, 'bin')
EMULATOR = os.path.join(ROOT, 'tests', 'aws-emulator', 'emulator.py')
PY = '/usr/bin/python3'
BROKER_KEY = 'AKIDBROKER0000000001'
BROKER_SECRET = 'broker-secret-key-for-tests-only'
ACCOUNT = '111122223333'
# The store every Broker uses unless its config names one: 'sqlite' (state_dir/elevate.db,
# the default) or 'pg' (a database of its own on a PostgreSQL shared by the run, pg.py).
STORE = os.environ.get('ELEVATE_TEST_STORE', 'sqlite')
if STORE not in ('sqlite', 'pg'):
    raise SystemExit('ELEVATE_TEST_STORE=%s: sqlite or pg' % STORE)


class Skip(Exception):
    """A test that does not apply to this run (run.py counts it as skipped)."""


# What the broker says when another holds the store's write lock past its wait (SQLite's
# busy timeout, PostgreSQL's lock_timeout): 5 s each.
STORE_LOCKED = 'database is locked' if STORE == 'sqlite' else 'lock timeout'


def sqlite_only(why):
    """Skips the calling test when the brokers run on PostgreSQL."""
    if STORE != 'sqlite':
        raise Skip('SQLite only: ' + why)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def child_pids(pid):
    """The pids of the processes whose parent is pid (from /proc)."""
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(d))
    return out


def wait_for(pred, timeout=10.0, interval=0.05, what='condition'):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError('timed out waiting for %s (last: %r)' % (what, last))


def iso(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def parse_iso(s):
    return datetime.strptime(s[:19], '%Y-%m-%dT%H:%M:%S').replace(tzinfo=timezone.utc).timestamp()


class Emulator:
    def __init__(self, tmp):
        self.tmp = tmp
        self.proc = None
        self.port = None

    def start(self):
        pf = os.path.join(self.tmp, 'emulator.port')
        self.log = open(os.path.join(self.tmp, 'emulator.log'), 'w')
        self.proc = subprocess.Popen([PY, EMULATOR, '--port', '0', '--port-file', pf, '--quiet'],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(pf) and open(pf).read().strip(), 20, what='emulator')
        self.port = int(open(pf).read().strip())
        self.url = 'http://127.0.0.1:%d' % self.port
        return self

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + '/_emulator/' + path, data=data, method=method,
                                     headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def log_entries(self, since=0):
        entries = self.control('GET', 'log')
        if isinstance(entries, dict):
            entries = entries.get('log', entries.get('entries', []))
        return [e for e in entries if e.get('seq', 0) > since]

    def last_seq(self):
        entries = self.log_entries()
        return entries[-1]['seq'] if entries else 0

    def faults(self, **kw):
        body = {'latency_ms': 0, 'throttle_rate': 0.0, 'error_rate': 0.0}
        body.update(kw)
        return self.control('POST', 'faults', body)

    def clock(self, offset):
        return self.control('POST', 'clock', {'offset': offset})

    def state(self):
        return self.control('GET', 'state')

    def decision(self, akid, action='ec2:DescribeInstances'):
        """How the emulator's policies decide a call with these credentials now: 'allow',
        'explicit_deny' (a Deny matched: the revocation policy), 'implicit_deny' (no Allow:
        past the session policy's end), 'expired' or 'unknown_key'."""
        return self.control('POST', 'check', {'access_key_id': akid, 'action': action,
                                              'resource': '*',
                                              'region': 'ap-northeast-1'})['decision']

    def keys_of(self, userid=None, request_id=None):
        """Unexpired credentials the emulator issued, to a role session (aws:userid) or
        with an elevate:request-id session tag."""
        return [c['access_key_id'] for c in self.state()['credentials'] if not c['expired'] and
                (userid is None or c['user_id'] == userid) and
                (request_id is None or c['tags'].get('elevate:request-id') == request_id)]

    def keys_by_request(self):
        """{elevate:request-id session tag: [unexpired access keys issued with it]}."""
        out = {}
        for c in self.state()['credentials']:
            if not c['expired'] and 'elevate:request-id' in c['tags']:
                out.setdefault(c['tags']['elevate:request-id'], []).append(c['access_key_id'])
        return out

    def session_denied(self, userid=None, request_id=None):
        """Whether every unexpired credential of that session (at least one) is denied by a
        Deny in the role's policies: the revocation policy holds it."""
        keys = self.keys_of(userid, request_id)
        return bool(keys) and all(self.decision(k) == 'explicit_deny' for k in keys)

    # Holds: force an interleaving.  The emulator holds the next matching AWS call open just
    # before its action runs (after faults, SigV4 and validation), so the action happens at
    # release time.  A held call releases itself after `timeout` seconds (emulator default 60).
    def hold(self, action, count=1, service=None, timeout=None):
        body = {'action': action, 'count': count}
        if service is not None:
            body['service'] = service
        if timeout is not None:
            body['timeout'] = timeout
        return self.control('POST', 'hold', body)

    def hold_status(self):
        return self.control('GET', 'hold')

    def held(self):
        return self.hold_status()['held']

    def wait_held(self, n=1, timeout=10.0):
        deadline = time.time() + timeout
        while True:
            st = self.hold_status()
            if st['held'] >= n:
                return st
            if time.time() >= deadline:
                raise AssertionError('emulator: expected at least %d held call(s) within %.1fs, have %d '
                                     '(armed: %s, held: %s)' % (n, timeout, st['held'], st['armed'],
                                                                st['calls']))
            time.sleep(0.02)

    def release(self, count=None):
        """Release the `count` oldest held calls; with None release all and disarm every hold."""
        return self.control('POST', 'release', {} if count is None else {'count': count})


class User:
    def __init__(self, name, cfgdir):
        self.name = name
        self.cfgdir = cfgdir
        with open(os.path.join(cfgdir, 'key')) as f:
            sk = base64.b64decode(f.read().strip())
        self.seed, self.pk = sk[:32], sk[32:]
        self.pubkey = 'ed25519:' + base64.b64encode(self.pk).decode()

    def sign(self, method, path_query, date, nonce, body):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        s = '\n'.join(['elevate-request-v1', method, path_query, date, nonce, self.name,
                       hashlib.sha256(body).hexdigest()])
        sig = Ed25519PrivateKey.from_private_bytes(self.seed).sign(s.encode())
        return 'ed25519=' + base64.b64encode(sig).decode()


DEFAULT_PROFILES = {
    'prod-readonly': {
        'role_arn': 'arn:aws:iam::%s:role/ProdReadOnly' % ACCOUNT,
        'region': 'ap-northeast-1',
        'requesters': ['group:engineers'],
        'approvers': ['group:sre-leads'],
        'approvals_required': 1,
        'default_duration': '15m', 'max_duration': '1h', 'pending_ttl': '30m',
        'reason_required': True, 'ticket_pattern': '^(INC|CHG)-[0-9]+$',
        'ssm': {'targets': ['i-0123456789abcdef0'], 'target_tags': {'env': 'prod'},
                'documents': ['SSM-SessionManagerRunShell', 'AWS-StartPortForwardingSession']},
    },
    'prod-admin': {
        'role_arn': 'arn:aws:iam::%s:role/ProdAdmin' % ACCOUNT,
        'region': 'ap-northeast-1',
        'requesters': ['group:engineers', 'group:sre-leads'],
        'approvers': [{'from': 'group:sre-leads', 'count': 1}, {'from': 'group:security', 'count': 1}],
        'default_duration': '10m', 'max_duration': '30m', 'pending_ttl': '10m',
        'reason_required': True,
    },
    'dev': {
        'role_arn': 'arn:aws:iam::%s:role/Dev' % ACCOUNT,
        'region': 'ap-northeast-1',
        'requesters': ['group:engineers', 'group:sre-leads'],
        'approvers': ['group:sre-leads'],
        'approvals_required': 1, 'allow_self_approval': False,
        'default_duration': '15m', 'max_duration': '8h', 'pending_ttl': '30m',
        'reason_required': False,
    },
}

USERS = {'alice': 'engineers', 'bob': 'engineers', 'carol': 'sre-leads', 'dave': 'sre-leads',
         'erin': 'security', 'frank': 'platform-admins'}


class Broker:
    """One elevated with its own state dir, policy and users."""

    def __init__(self, emulator, tmp=None, profiles=None, config=None, smtp_port=None,
                 users=None, env=None, peer=None):
        """peer: another Broker this one is a second node of (Ctx.nodes): the same users,
        policy and store; its own port, state_dir, audit file and log."""
        self.emulator = emulator
        self.peer = peer
        self.tmp = tmp or tempfile.mkdtemp(prefix='elevate-it-')
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.state_dir = os.path.join(self.tmp, 'state')
        self.policy_dir = os.path.join(self.tmp, 'policies')
        self.audit_file = os.path.join(self.tmp, 'audit.jsonl')
        self.proc = None
        self.extra_env = env or {}
        os.makedirs(self.policy_dir, exist_ok=True)
        self.users = {}
        for name in (() if peer else (users or USERS)):
            cfg = os.path.join(self.tmp, 'cfg', name)
            r = subprocess.run([os.path.join(BIN, 'elevate'), 'init', '--server', self.url,
                                '--user', name], env=dict(os.environ, ELEVATE_CONFIG_DIR=cfg,
                                HOME=self.tmp), capture_output=True, text=True)
            assert r.returncode == 0, 'elevate init failed: %s' % r.stderr
            self.users[name] = User(name, cfg)
        if peer:
            self.users = peer.users
        self.profiles = profiles or (peer.profiles if peer else DEFAULT_PROFILES)
        self.write_policy()
        self.config = {
            'listen': '127.0.0.1:%d' % self.port,
            'public_url': self.url,
            'state_dir': self.state_dir,
            'policies': self.policy_dir,
            'templates': os.path.join(ROOT, 'templates'),
            'aws': {'region': 'ap-northeast-1', 'endpoint': emulator.url},
            'audit': {'file': self.audit_file},
            'auditors': 'group:security',
            'admins': 'group:platform-admins',
            'log': {'level': 'debug'},
        }
        if smtp_port:
            self.config['smtp'] = {'url': 'smtp://127.0.0.1:%d' % smtp_port,
                                   'from': 'elevate@example.com', 'timeout': '5s'}
        if config:
            for k, v in config.items():
                if isinstance(v, dict) and isinstance(self.config.get(k), dict):
                    self.config[k].update(v)
                else:
                    self.config[k] = v
        self.pg = None
        if peer and 'store' not in self.config:
            self.pg = peer.pg
            self.config['store'] = dict(peer.config['store'])
        if STORE == 'pg' and 'store' not in self.config:
            import pg
            self.pg = pg.shared()
            self.config['store'] = {'url': self.pg.new_database()}
        self.config_path = os.path.join(self.tmp, 'elevated.json')
        self.write_config()

    def write_policy(self):
        groups = {}
        for name, g in USERS.items():
            if name in self.users:
                groups.setdefault(g, []).append(name)
        doc = {'users': {n: {'email': '%s@example.com' % n, 'keys': [u.pubkey]}
                         for n, u in self.users.items()},
               'groups': groups, 'profiles': self.profiles}
        with open(os.path.join(self.policy_dir, 'policy.json'), 'w') as f:
            json.dump(doc, f, indent=2)

    def write_config(self):
        with open(self.config_path, 'w') as f:
            json.dump(self.config, f, indent=2)

    def env(self):
        e = dict(os.environ)
        e.update({'AWS_ACCESS_KEY_ID': BROKER_KEY, 'AWS_SECRET_ACCESS_KEY': BROKER_SECRET,
                  'AWS_EC2_METADATA_DISABLED': 'true', 'HOME': self.tmp})
        e.pop('AWS_SESSION_TOKEN', None)
        e.pop('AWS_PROFILE', None)
        e.update(self.extra_env)
        return e

    def start(self, wait=True):
        self.log = open(os.path.join(self.tmp, 'elevated.log'), 'a')
        self.proc = subprocess.Popen([os.path.join(BIN, 'elevated'), '--config', self.config_path],
                                     env=self.env(), stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            def up():
                if self.proc.poll() is not None:
                    raise AssertionError('elevated exited with %s:\n%s' % (self.proc.returncode,
                                         self.logtext()[-3000:]))
                try:
                    with urllib.request.urlopen(self.url + '/healthz', timeout=1) as r:
                        return r.status == 200
                except Exception:
                    return False
            wait_for(up, 20, what='elevated /healthz')
        return self

    def logtext(self):
        try:
            return open(os.path.join(self.tmp, 'elevated.log')).read()
        except OSError:
            return ''

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    # ---- CLI and API ----
    def cli(self, user, *args, input=None, env=None, timeout=60):
        e = dict(os.environ, ELEVATE_CONFIG_DIR=self.users[user].cfgdir, HOME=self.tmp,
                 ELEVATE_CACHE_DIR=os.path.join(self.tmp, 'cache', user))
        if self.peer:                  # the users' config names the first node
            e['ELEVATE_SERVER'] = self.url
        if env:
            e.update(env)
        return subprocess.run([os.path.join(BIN, 'elevate')] + list(args), input=input,
                              capture_output=True, text=True, env=e, timeout=timeout)

    def cli_json(self, user, *args, **kw):
        r = self.cli(user, '--json', *args, **kw)
        assert r.returncode == 0, 'elevate %s failed (%d): %s%s' % (' '.join(args), r.returncode,
                                                                 r.stdout, r.stderr)
        return json.loads(r.stdout)

    def api(self, user, method, path, body=None, raw=None, date=None, nonce=None, sig=None,
            headers=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b'')
        date = date or iso(time.time())
        nonce = nonce or base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip('=')
        h = {'Content-Type': 'application/json', 'X-Elevate-User': user, 'X-Elevate-Date': date,
             'X-Elevate-Nonce': nonce}
        if user in self.users:
            h['X-Elevate-Signature'] = sig or self.users[user].sign(method, path, date, nonce, data)
        elif sig:
            h['X-Elevate-Signature'] = sig
        if headers:
            h.update(headers)
        req = urllib.request.Request(self.url + path, data=data if method != 'GET' else None,
                                     method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b'null')
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors='replace')

    def request(self, user='alice', profile='prod-readonly', duration='15m', reason='deploy fix',
                ticket='INC-1', **kw):
        body = {'profile': profile, 'duration': duration, 'reason': reason}
        if ticket:
            body['ticket'] = ticket
        body.update(kw)
        st, j = self.api(user, 'POST', '/v1/requests', body)
        assert st == 201, 'create failed: %s %s' % (st, j)
        return j

    def get(self, rid, user='alice'):
        st, j = self.api(user, 'GET', '/v1/requests/' + rid)
        assert st == 200, 'get failed: %s %s' % (st, j)
        return j

    def approve(self, rid, user='carol', comment=None):
        return self.api(user, 'POST', '/v1/requests/%s/approve' % rid,
                        {'comment': comment} if comment else {})

    def wait_state(self, rid, want, timeout=20, user=None):
        """Polls GET /v1/requests/ID until the request's state is `want` (a state or a
        tuple of states) and returns the request; fails after `timeout` seconds naming the
        last state seen. GET as the admin (frank) when there is one: he sees every request."""
        want = (want,) if isinstance(want, str) else tuple(want)
        user = user or ('frank' if 'frank' in self.users else 'alice')
        deadline = time.time() + timeout
        pause = 0.005                  # minting on the emulator takes milliseconds
        while True:
            st, j = self.api(user, 'GET', '/v1/requests/' + rid)
            assert st == 200, 'GET %s: %s %s' % (rid, st, j)
            if j['state'] in want:
                return j
            if time.time() >= deadline:
                raise AssertionError('request %s is %s after %.0fs, expected %s (failure: %s)'
                                     % (rid, j['state'], timeout, '/'.join(want),
                                        j.get('failure')))
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def approve_until(self, rid, want='active', user='carol', comment=None, timeout=20):
        """The approval that completes the quorum: it answers 200 `activating` as soon as
        the vote is committed (the broker mints after the answer), then the request is
        followed until it is `want`. Returns the request then."""
        st, d = self.approve(rid, user, comment)
        assert st == 200 and d['state'] == 'activating', (st, d)
        return self.wait_state(rid, want, timeout)

    # ---- the store, read and written outside the broker ----
    def _psql(self, sql, args):
        """sql (qmark placeholders, bound as psql variables: quoted literals) on the
        broker's PostgreSQL database; psql's output."""
        import pg
        parts = sql.split('?')
        if len(parts) - 1 != len(args):
            raise ValueError('%d placeholders, %d arguments' % (len(parts) - 1, len(args)))
        text = parts[0] + ''.join(":'p%d'%s" % (i, part) for i, part in enumerate(parts[1:]))
        argv = [os.path.join(self.pg.bindir, 'psql'), '-X', '-q', '-A', '-t', '-v',
                'ON_ERROR_STOP=1', '-d', self.config['store']['url']]
        for i, a in enumerate(args):
            argv += ['-v', 'p%d=%s' % (i, a)]
        r = subprocess.run(argv, input=text, capture_output=True, text=True,
                           env=pg._clean_env(), timeout=60)
        if r.returncode != 0:
            raise RuntimeError('psql: %s: %s' % (sql, r.stderr.strip()))
        return r.stdout

    def query(self, sql, args=()):
        """The rows of a SELECT on the broker's store (SQLite or PostgreSQL), as tuples of
        Python values."""
        if self.pg is None:
            db = sqlite3.connect(os.path.join(self.state_dir, 'elevate.db'), timeout=10)
            try:
                return db.execute(sql, args).fetchall()
            finally:
                db.close()
        out = self._psql('SELECT json_agg(q) FROM (%s) q' % sql, args).strip()
        return [tuple(row.values()) for row in json.loads(out or 'null') or []]

    def execute(self, sql, args=()):
        """A write on the broker's store, committed."""
        if self.pg is None:
            db = sqlite3.connect(os.path.join(self.state_dir, 'elevate.db'), timeout=10)
            try:
                db.execute(sql, args)
                db.commit()
            finally:
                db.close()
            return
        self._psql(sql, args)

    @contextlib.contextmanager
    def hold_store(self):
        """Holds the store's write lock, as another writer would, until the block ends:
        SQLite's (BEGIN IMMEDIATE on the file), or PostgreSQL's (the advisory lock every
        write transaction takes, store_pg.c, held by a psql session)."""
        if self.pg is None:
            db = sqlite3.connect(os.path.join(self.state_dir, 'elevate.db'), timeout=10,
                                 isolation_level=None)
            db.execute('BEGIN IMMEDIATE')
            try:
                yield
            finally:
                db.rollback()
                db.close()
            return
        import pg
        p = subprocess.Popen([os.path.join(self.pg.bindir, 'psql'), '-X', '-q', '-A', '-t',
                              '-d', self.config['store']['url']], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=pg._clean_env())
        try:
            p.stdin.write("SELECT 'held' FROM pg_advisory_lock(1701602678, 1);\n")
            p.stdin.flush()
            assert p.stdout.readline().strip() == 'held'
            yield
        finally:
            p.stdin.close()                # psql ends its session: the lock goes with it
            p.wait(30)

    # ---- audit ----
    def audit(self, request_id=None):
        rows = self.query('SELECT seq, time, actor, event, request_id, data FROM audit '
                          'ORDER BY seq')
        out = [{'seq': r[0], 'time': r[1], 'actor': r[2], 'event': r[3], 'request_id': r[4],
                'data': json.loads(r[5])} for r in rows]
        if request_id:
            out = [r for r in out if r['request_id'] == request_id]
        return out

    def events(self, request_id=None):
        return [r['event'] for r in self.audit(request_id)]

    def close(self):
        self.stop()


class SMTPServer:
    """A real SMTP server (Debian's aiosmtpd) on loopback, saving each message to a dir."""

    def __init__(self, tmp, port=None, auth=None):
        self.tmp = tmp
        self.auth = auth            # "user:password" to require SMTP AUTH
        self.port = port or free_port()
        self.dir = os.path.join(tmp, 'mail')
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None

    def start(self):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'smtp_sink.py')
        self.proc = subprocess.Popen([PY, script, str(self.port), self.dir] +
                                     ([self.auth] if self.auth else []),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                socket.create_connection(('127.0.0.1', self.port), 0.5).close()
                return True
            except OSError:
                return False
        wait_for(up, 10, what='SMTP server')
        return self

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None

    def messages(self):
        import email
        from email import policy
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith('.eml'):
                with open(os.path.join(self.dir, name), 'rb') as f:
                    raw = f.read()
                msg = email.message_from_bytes(raw, policy=policy.default)
                meta = json.load(open(os.path.join(self.dir, name[:-4] + '.json')))
                out.append({'raw': raw, 'msg': msg, 'rcpt': meta['rcpt'], 'from': meta['from']})
        return out


class Ctx:
    def __init__(self, root, emulator):
        self.root = root
        self.bin = BIN
        self.emulator = emulator
        self._cleanup = []

    def broker(self, **kw):
        b = Broker(self.emulator, **kw)
        self._cleanup.append(b.close)
        return b

    def nodes(self, n=2, pg=None, config=None, **kw):
        """n elevated nodes of one deployment: one PostgreSQL database (a new one on pg, a
        server of the test's own, else on the run's shared server), the same users and
        policy, the same key set (`elevated keygen`, copied into every state_dir), each node
        with its own port, state_dir, audit.key, audit file and log. kw go to every
        Broker (config is merged into each node's). Not started."""
        import pg as pgmod
        server = pg or pgmod.shared()
        cfg = dict(config or {})
        cfg['store'] = dict(cfg.get('store') or {}, url=server.new_database())
        first = self.broker(config=dict(cfg, node='node-a'), **kw)
        first.pg = server
        out = [first]
        for i in range(1, n):
            out.append(self.broker(config=dict(cfg, node='node-' + chr(ord('a') + i)),
                                   peer=first, **{k: v for k, v in kw.items() if k != 'users'}))
        keys = os.path.join(first.tmp, 'keyset')
        r = subprocess.run([os.path.join(BIN, 'elevated'), 'keygen', keys],
                           capture_output=True, text=True)
        assert r.returncode == 0, 'elevated keygen: %s' % r.stderr
        for b in out:
            b.pg = server                  # b.query() and b.audit() read the shared store
            os.makedirs(b.state_dir, mode=0o700, exist_ok=True)
            for f in ('token.key', 'secret.key'):
                shutil.copy2(os.path.join(keys, f), os.path.join(b.state_dir, f))
                os.chmod(os.path.join(b.state_dir, f), 0o600)
        return out

    def smtp(self, tmp, auth=None):
        s = SMTPServer(tmp, auth=auth)
        self._cleanup.append(s.stop)
        return s

    def postgres(self, **kw):
        """A PostgreSQL server of this test's own, started (pg.py); stopped and removed
        after the test whatever its outcome. pg.shared() is one for the whole run."""
        import pg
        server = pg.PostgreSQL(**kw)
        self._cleanup.append(server.stop)
        return server.start()

    def cleanup(self):
        for fn in reversed(self._cleanup):
            try:
                fn()
            except Exception:
                pass
        self._cleanup = []


# ---- mail and browser helpers (issue 4) ----

BROWSER_DIR = os.path.join(ROOT, 'tests', 'browser')
OUT_DIR = os.path.join(ROOT, 'tests', 'out')


def mail_parts(msg):
    """{content type: decoded text} of a message's leaf parts (email.policy.default)."""
    out = {}
    for part in msg.walk():
        if part.is_multipart():
            continue
        out.setdefault(part.get_content_type(), part.get_content())
    return out


def mail_links(msg):
    """Approval links in a message: (from the text part, from the HTML part)."""
    import html as _html
    import re
    parts = mail_parts(msg)
    pat = r'https?://[^\s"<>\']+/approve/[A-Za-z0-9_-]+'
    text = re.findall(pat, parts.get('text/plain', ''))
    hrefs = [_html.unescape(h) for h in re.findall(r'href="([^"]*)"', parts.get('text/html', ''))]
    return text, [h for h in hrefs if re.fullmatch(pat, h)]


def wait_mail(smtp, n, timeout=15, pred=None):
    """Waits until the server holds at least n messages (matching pred) and returns them."""
    def got():
        msgs = [m for m in smtp.messages() if pred is None or pred(m)]
        return msgs if len(msgs) >= n else None
    return wait_for(got, timeout, 0.1, what='%d mail(s)' % n)


def browse(steps, timeout=60, allow_fail=False):
    """Runs tests/browser/browse.mjs (headless Debian Chromium, never a downloaded one)."""
    env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD='1')
    r = subprocess.run(['node', os.path.join(BROWSER_DIR, 'browse.mjs'),
                        json.dumps({'steps': steps, 'timeout': timeout * 1000})],
                       cwd=BROWSER_DIR, env=env, capture_output=True, text=True,
                       timeout=timeout + 15)
    try:
        res = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError('browse.mjs printed no result (rc %d): %s %s' % (
            r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    if r.returncode != 0 and not allow_fail:
        raise AssertionError('browse.mjs failed (rc %d): %s %s' % (r.returncode, res['errors'],
                                                                 r.stderr[-2000:]))
    return res
