"""The test harness's PostgreSQL (pg.py) and the build's libpq: a server starts and stops
leaving no process and no directory behind (also when the test fails, forgets it, or is
killed); two run at once; the libpq smoke program (tests/integration/pg_smoke.c) connects
with the password file and fails clearly without the right password; started as root,
the server runs as an unprivileged user; the role elevate can do what a store needs."""
import json
import os
import signal
import shutil
import socket
import stat
import subprocess
import sys
import urllib.parse

import pg
from harness import ROOT, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
SMOKE = os.path.join(ROOT, 'build', 'tests', 'pg_smoke')


def smoke(url):
    if not os.access(SMOKE, os.X_OK):
        raise AssertionError('%s is missing: make build/tests/pg_smoke (make test and make '
                             'integration build it)' % SMOKE)
    env = {k: v for k, v in os.environ.items() if not k.startswith('PG')}
    if url is not None:
        env['ELEVATE_PG_URL'] = url
    return subprocess.run([SMOKE], env=env, capture_output=True, text=True, timeout=60)


def port_open(port):
    try:
        socket.create_connection(('127.0.0.1', port), 1).close()
        return True
    except OSError:
        return False


def assert_gone(what, procs, d):
    left = pg.alive(procs)
    assert not left, '%s: server processes still running: %s' % (what, sorted(left))
    assert not os.path.exists(d), '%s: %s is still there' % (what, d)


class Boom(Exception):
    pass


# A test process of its own: starts a server, says where it is, then exits without
# stopping it (the atexit hook must) or waits to be killed (the parent-death signal must).
CHILD = r'''
import json, sys, time
sys.path.insert(0, %r)
import pg
p = pg.PostgreSQL().start()
print(json.dumps({'dir': p.dir, 'port': p.port, 'procs': p.processes()}), flush=True)
if sys.argv[1] == 'wait':
    time.sleep(600)
'''


def child_server(ctx, how):
    proc = subprocess.Popen([sys.executable, '-c', CHILD % HERE, how], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ctx._cleanup.append(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
    line = proc.stdout.readline()
    assert line, 'the child started no server: %s' % proc.stderr.read()[-2000:]
    info = json.loads(line)
    info['procs'] = {int(k): v for k, v in info['procs'].items()}

    def reap():  # whatever the test's outcome, nothing of the child's server survives it
        for pid in pg.alive(info['procs']):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(info['dir'], ignore_errors=True)
    ctx._cleanup.append(reap)
    return proc, info


def test_start_stop_leaves_nothing(ctx):
    """A server answers, then stops with every process of it gone and its directory
    removed: by stop(), by the context manager when the test fails inside it, by the
    atexit hook when a test process forgets it, and by the parent-death signal when the
    test process is killed (the directory then stays: a SIGKILL runs no code)."""
    s = ctx.postgres()
    t = s.timings
    print('     pg: initdb %.2fs, start %.2fs, role and database %.2fs, total %.2fs'
          % (t['initdb_s'], t['start_s'], t['setup_s'], t['total_s']), flush=True)
    procs, d, port = s.processes(), s.dir, s.port
    # the postmaster and its helpers (checkpointer, background writer, WAL writer,
    # autovacuum launcher, logical replication launcher)
    assert len(procs) >= 5, procs
    assert s.pid in procs and os.path.isdir(s.data) and port_open(port)
    r = smoke(s.url)
    assert r.returncode == 0, r.stderr
    s.stop()
    assert_gone('stop()', procs, d)
    assert s.proc is None and not port_open(port)
    s.stop()   # idempotent

    try:
        with pg.PostgreSQL() as s2:
            procs, d = s2.processes(), s2.dir
            assert smoke(s2.url).returncode == 0
            raise Boom()
    except Boom:
        pass
    assert_gone('a test failing inside `with`', procs, d)

    proc, info = child_server(ctx, 'exit')
    assert proc.wait(60) == 0, proc.stderr.read()[-2000:]
    assert len(info['procs']) >= 5, info
    assert_gone('atexit', info['procs'], info['dir'])

    proc, info = child_server(ctx, 'wait')
    assert pg.alive(info['procs']) and port_open(info['port'])
    proc.kill()
    proc.wait()
    wait_for(lambda: not pg.alive(info['procs']), 20, what='the server to die with its parent')
    assert not port_open(info['port'])


def test_two_servers_at_once(ctx):
    """Two servers run side by side, each on its own port and directory with its own data;
    stopping one leaves the other serving."""
    a = ctx.postgres()
    b = ctx.postgres()
    assert a.port != b.port and a.dir != b.dir, (a.port, b.port)
    for s in (a, b):
        r = smoke(s.url)
        assert r.returncode == 0 and ' port %d,' % s.port in r.stdout, (r.stdout, r.stderr)
    a.psql('CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (41)')
    assert a.psql("SELECT x + 1 FROM only_in_a").strip() == '42'
    assert b.psql("SELECT to_regclass('only_in_a') IS NULL").strip() == 't'
    a_procs = a.processes()
    a.stop()
    assert not pg.alive(a_procs)
    r = smoke(b.url)
    assert r.returncode == 0, r.stderr
    assert b.psql('SELECT 1').strip() == '1'


def test_libpq_smoke_program(ctx):
    """The build's libpq program connects with the password file (URL and key=value
    forms, a fresh database too) and fails clearly, saying nothing of the password, when
    the password is wrong, missing, or in a file others may read; a password written into
    the URL is refused before connecting."""
    s = pg.shared()
    r = smoke(s.url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('pg_smoke: SELECT 1 = 1 on PostgreSQL 1'), r.stdout
    assert ' database elevate, as elevate ' in r.stdout, r.stdout
    r = smoke(s.dsn)
    assert r.returncode == 0, r.stderr
    url = s.new_database()
    r = smoke(url)
    dbname = urllib.parse.urlsplit(url).path.lstrip('/')
    assert dbname.startswith('elevate_'), url
    assert r.returncode == 0 and ' database %s, ' % dbname in r.stdout, (r.stdout, r.stderr)

    tmp = ctx_tmp(ctx)
    wrong = 'not-the-password-%d' % os.getpid()
    bad = os.path.join(tmp, 'pgpass.wrong')
    with open(bad, 'w') as f:
        f.write('127.0.0.1:%d:*:elevate:%s\n' % (s.port, wrong))
    os.chmod(bad, 0o600)
    r = smoke(s.url_for(passfile=bad))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == '' and r.stderr.startswith('pg_smoke: cannot connect: '), r.stderr
    assert 'password authentication failed for user "elevate"' in r.stderr, r.stderr
    assert wrong not in r.stderr

    empty = os.path.join(tmp, 'pgpass.empty')
    open(empty, 'w').close()
    os.chmod(empty, 0o600)
    r = smoke(s.url_for(passfile=empty))
    assert r.returncode == 1 and 'no password supplied' in r.stderr, r.stderr

    # libpq ignores a password file others may read, and says so
    loose = os.path.join(tmp, 'pgpass.loose')
    shutil.copy(s.passfile, loose)
    os.chmod(loose, 0o644)
    r = smoke(s.url_for(passfile=loose))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert 'has group or world access' in r.stderr and 'no password supplied' in r.stderr, \
        r.stderr

    inline = 'postgresql://elevate:%s@127.0.0.1:%d/elevate' % (wrong, s.port)
    r = smoke(inline)
    assert r.returncode == 2 and 'holds a password: put it in a passfile' in r.stderr, r.stderr
    assert wrong not in r.stderr
    r = smoke(None)
    assert r.returncode == 2 and 'set ELEVATE_PG_URL' in r.stderr, r.stderr
    r = smoke('postgresql://[not a url')
    assert r.returncode == 2 and 'not a libpq connection string' in r.stderr, r.stderr


def ctx_tmp(ctx):
    import tempfile
    d = tempfile.mkdtemp(prefix='elevate-pgtest-')
    ctx._cleanup.append(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def test_server_runs_unprivileged(ctx):
    """Started as root (as CI is), every process of the server runs as the unprivileged
    server user and owns the data; it listens on 127.0.0.1 only and takes passwords
    (SCRAM) only. Not root: it runs as the user who started it."""
    s = pg.shared()
    want = s.user.pw_uid if os.geteuid() == 0 else os.geteuid()
    if os.geteuid() == 0:
        assert s.user is not None and want != 0, s.user
        assert s.user.pw_name == os.environ.get('ELEVATE_PG_USER', pg.SERVER_USER) or \
            s.user.pw_name == 'nobody', s.user
    procs = s.processes()
    assert len(procs) >= 5, procs
    for pid in procs:
        ids = pg.process_ids(pid)
        assert ids['uid'] == (want,) * 4, (pid, ids)
        if os.geteuid() == 0:
            assert ids['gid'] == (s.user.pw_gid,) * 4, (pid, ids)
    st = os.stat(s.data)
    assert st.st_uid == want and stat.S_IMODE(st.st_mode) == 0o700, (st.st_uid, oct(st.st_mode))
    for f in (s.passfile, s.admin_passfile):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    assert s.psql('SHOW listen_addresses').strip() == '127.0.0.1'
    rules = s.psql("SELECT type, auth_method FROM pg_hba_file_rules ORDER BY line_number",
                   admin=True).split()
    assert rules and all(r.endswith('|scram-sha-256') for r in rules), rules


def test_role_has_what_a_store_needs(ctx):
    """The role elevate is no superuser (as on a managed service), yet owns its database
    and may create tables, take advisory locks, LISTEN/NOTIFY and lock rows with SKIP
    LOCKED - what several nodes on one database use."""
    s = pg.shared()
    url = s.new_database()
    assert s.psql('SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname '
                  '= current_user', url=url).strip() == 'f|f|f'
    out = s.psql("""
        CREATE TABLE due (id int PRIMARY KEY, claimed_by text);
        INSERT INTO due SELECT g, NULL FROM generate_series(1, 3) g;
        SELECT pg_try_advisory_lock(12);
        LISTEN wake;
        NOTIFY wake, 'x';
        BEGIN;
        SELECT id FROM due ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED;
        COMMIT;
    """, url=url)
    lines = out.splitlines()
    assert lines[0] == 't' and lines[-1] == '1', out       # the lock, the claimed row
    assert lines[1].startswith('Asynchronous notification "wake" with payload "x" '), out
    r = s.psql('CREATE ROLE sneaky', url=url, check=False)
    assert r.returncode != 0 and 'permission denied' in r.stderr, r.stderr
