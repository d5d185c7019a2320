"""Issue 9: privilege separation. elevated is a parent, a front (libmicrohttpd, no secret)
and an engine (store, keys, AWS). The front's memory, read through /proc/PID/mem, holds
none of the three keys and not the broker's AWS secret (the engine's does: the search
works); killing the front loses nothing and it is back within a second while the reaper
goes on ending grants; killing the engine leaves the front answering 503 until the parent
has started a new engine."""
import base64
import os
import signal
import sqlite3
import time
import urllib.error
import urllib.request

import harness
from harness import BROKER_SECRET, child_pids, parse_iso, wait_for
from test_revoke import _creds, _emu_sessions, _grant, _session


def _children(b):
    """{'front': pid, 'engine': pid} of the elevated b started."""
    out = {}
    for pid in child_pids(b.proc.pid):
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        for role in ('front', 'engine'):
            if ('--' + role).encode() in argv:
                out[role] = pid
    return out


def _status(pid):
    with open('/proc/%d/status' % pid) as f:
        return dict(line.rstrip('\n').split(':\t', 1) for line in f if ':\t' in line)


def _scan(pid, needles):
    """The names of the needles (name -> bytes) found anywhere in pid's readable memory."""
    found = set()
    longest = max(len(n) for n in needles.values())
    with open('/proc/%d/maps' % pid) as maps, open('/proc/%d/mem' % pid, 'rb', 0) as mem:
        for line in maps:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split('-'))
            if fields[1][0] != 'r' or (len(fields) > 5 and fields[5] == '[vvar]'):
                continue
            tail = b''
            for off in range(lo, hi, 1 << 20):
                try:
                    mem.seek(off)
                    chunk = mem.read(min(1 << 20, hi - off))
                except OSError:
                    tail = b''
                    continue
                buf = tail + chunk
                for name, n in needles.items():
                    if name not in found and n in buf:
                        found.add(name)
                tail = buf[-longest:]
    return found


def _secrets(b):
    st = b.state_dir
    with open(os.path.join(st, 'token.key'), 'rb') as f:
        token_seed = base64.b64decode(f.read().strip())
    with open(os.path.join(st, 'audit.key'), 'rb') as f:
        audit_seed = f.read()[:32]
    with open(os.path.join(st, 'secret.key'), 'rb') as f:
        at_rest = f.read()
    assert len(token_seed) == 32 and len(audit_seed) == 32 and len(at_rest) == 32
    return {'token-signing key': token_seed, 'audit key': audit_seed,
            'at-rest key': at_rest, 'AWS secret': BROKER_SECRET.encode()}


def _healthz(b, timeout=2):
    try:
        with urllib.request.urlopen(b.url + '/healthz', timeout=timeout) as r:
            return r.status, r.headers.get('Retry-After')
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get('Retry-After')


def test_front_holds_no_secret(ctx):
    b = ctx.broker().start()
    # the front has served every kind of call: a grant, its credentials, an SSM session
    d = _grant(b)
    _creds(b, d['id'])
    _session(b, d['id'])
    kids = _children(b)
    assert set(kids) == {'front', 'engine'}, kids
    front, engine = kids['front'], kids['engine']
    secrets = _secrets(b)
    if 'sanitizer build' in b.logtext():
        # ASan and TSan map terabytes of readable shadow memory: the plain build's pass
        # of this test reads the memory; this one checks the rest
        print('     sanitizer build: the memory scan is left to the plain build')
    else:
        try:
            in_engine = _scan(engine, secrets)
            in_front = _scan(front, secrets)
        except PermissionError as e:
            raise AssertionError('cannot read /proc/PID/mem (the test needs root with '
                                 'CAP_SYS_PTRACE): %s' % e)
        # the search finds what is there: the engine holds every one of them
        assert in_engine == set(secrets), ('the search missed secrets the engine holds',
                                           set(secrets) - in_engine)
        assert in_front == set(), 'the front holds %s' % sorted(in_front)
    with open('/proc/%d/environ' % front, 'rb') as f:
        env = [v for v in f.read().split(b'\0') if v]
    assert not [v for v in env if v.startswith(b'AWS_')], 'AWS variables in the front'
    with open('/proc/%d/environ' % engine, 'rb') as f:
        assert b'AWS_SECRET_ACCESS_KEY=' + BROKER_SECRET.encode() in f.read()
    # no store, key or state file open in the front
    for fd in os.listdir('/proc/%d/fd' % front):
        try:
            target = os.readlink('/proc/%d/fd/%s' % (front, fd))
        except OSError:
            continue
        assert b.state_dir not in target and not target.endswith('.db'), target
    s = _status(front)
    assert s['NoNewPrivs'].strip() == '1', s['NoNewPrivs']
    if 'sanitizer build' not in b.logtext():
        assert s['Seccomp'].strip() == '2', s['Seccomp']           # a filter is on
        assert os.readlink('/proc/%d/root' % front) != '/'       # chrooted
    assert _status(engine)['Seccomp'].strip() == '0'


def test_run_as_switches_the_front_user(ctx):
    """Started as root with run_as, the front runs as that user in an empty root."""
    if os.geteuid() != 0:
        raise AssertionError('this test needs root, as CI runs it')
    b = ctx.broker(config={'run_as': 'nobody'}).start()
    front = _children(b)['front']
    uid = _status(front)['Uid'].split()
    assert uid == ['65534'] * 4, uid
    assert _status(_children(b)['engine'])['Uid'].split()[0] == '0'
    st, _ = _healthz(b)
    assert st == 200
    d = _grant(b)
    assert b.get(d['id'])['state'] == 'active'
    b2 = ctx.broker(config={'run_as': 'no-such-user-here'})
    b2.start(wait=False)
    rc = b2.proc.wait(20)
    assert rc != 0 and 'run_as: no such user: no-such-user-here' in b2.logtext(), \
        b2.logtext()[-2000:]


def test_front_killed_loses_nothing(ctx):
    """SIGKILL of the front while a grant's window ends: the parent starts another within
    a second, the reaper (in the engine) ends the grant on time meanwhile, and nothing
    the front had acknowledged is lost."""
    emu = ctx.emulator
    b = ctx.broker().start()
    pending = b.request(profile='prod-readonly', duration='5m', ticket='INC-1')
    d = _grant(b, duration='4s')
    sid = _session(b, d['id'])
    end = parse_iso(d['window_end'])
    old = _children(b)
    # the front stays stopped across the window's end; then it is killed
    os.kill(old['front'], signal.SIGSTOP)
    try:
        time.sleep(max(0, end + 3 - time.time()))
        assert _emu_sessions(emu)[sid]['Status'] == 'Terminated'
    finally:
        t0 = time.monotonic()
        os.kill(old['front'], signal.SIGKILL)
    wait_for(lambda: _children(b).get('front') not in (None, old['front']), 1.0,
             what='a new front within a second')

    def up():
        try:
            return _healthz(b, timeout=0.5)[0] == 200
        except OSError:
            return False
    wait_for(up, 1.5, what='the new front answering')
    print('     the front answered again %.3fs after SIGKILL' % (time.monotonic() - t0))
    assert _children(b)['engine'] == old['engine']   # the engine was left alone
    assert b.get(d['id'])['state'] == 'ended'
    assert b.get(pending['id'])['state'] == 'pending'
    ended = [a for a in b.audit(d['id']) if a['event'] == 'grant.ended']
    assert ended and parse_iso(ended[0]['time']) <= end + 5, ended
    assert 'the front was killed by signal 9' in b.logtext()


def test_engine_killed_front_answers_503(ctx):
    """SIGKILL of the engine while the store is held: the new engine cannot open it, so
    for as long as the test holds it the front answers 503 with Retry-After; released, the
    engine comes up, the front is linked to it, and the grants it had are still served."""
    harness.sqlite_only('a new engine blocked at open by a lock on the SQLite file')
    b = ctx.broker().start()
    d = _grant(b)
    old = _children(b)
    db = sqlite3.connect(os.path.join(b.state_dir, 'elevate.db'), timeout=30,
                         isolation_level=None)
    db.execute('BEGIN EXCLUSIVE')
    try:
        os.kill(old['engine'], signal.SIGKILL)
        wait_for(lambda: _children(b).get('engine') not in (None, old['engine']), 2,
                 what='a new engine')
        for _ in range(3):
            st, retry = _healthz(b)
            assert st == 503 and retry == '1', (st, retry)
            time.sleep(0.3)
        assert _children(b)['front'] == old['front']   # the front was left alone
    finally:
        db.execute('ROLLBACK')
        db.close()
    wait_for(lambda: _healthz(b)[0] == 200, 30, what='the engine back')
    assert b.get(d['id'])['state'] == 'active'
    assert 'the engine was killed by signal 9' in b.logtext()


def test_front_crash_is_restarted(ctx):
    """A front that crashes (SIGABRT, as a failed check would; not SIGSEGV, which the
    sanitizer builds catch and report as a crash of their own) is restarted like one
    killed, and the parent says how it died."""
    b = ctx.broker().start()
    old = _children(b)
    os.kill(old['front'], signal.SIGABRT)
    wait_for(lambda: _children(b).get('front') not in (None, old['front']), 2,
             what='a new front')
    wait_for(lambda: _healthz(b)[0] == 200, 5, what='served again')
    assert 'the front was killed by signal 6' in b.logtext()
