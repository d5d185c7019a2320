"""A throwaway PostgreSQL server for the tests: Debian's server binaries (package
`postgresql`, /usr/lib/postgresql/<version>/bin), initdb into a temporary directory, a
server on 127.0.0.1 on a free port (and a unix socket inside that directory), password
(SCRAM) authentication only, and everything torn down afterwards: the server stopped,
the directory removed - also when a test fails (context manager, Ctx cleanup) or forgets
(atexit), and the server dies with the process that started it (parent-death signal).

Run as root (CI is), the server runs as an unprivileged user, since PostgreSQL refuses
to run as root: ELEVATE_PG_USER, else `elevate-test`, created (useradd --system) when
missing, else `nobody`. The temporary directory is handed to that user.

    with PostgreSQL() as pg:            # or ctx.postgres() in a test, or shared()
        pg.url                          # postgresql://elevate@127.0.0.1:PORT/elevate?passfile=...
        pg.dsn                          # the same as libpq key=value words
        pg.new_database()               # the URL of a fresh empty database owned by elevate
        pg.psql('SELECT 1')             # as the role elevate; admin=True as the superuser

Roles: `elevate` (LOGIN, owns the database `elevate` and every database new_database()
makes; not a superuser, as on a managed service) with its password in `passfile`, and the
superuser `postgres` with its own in `admin_passfile`. Passwords are random, never on a
command line. Standard library and harness.py; psql and pg_isready come with the server."""

import atexit
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse

from harness import child_pids, free_port

ROLE = 'elevate'
DATABASE = 'elevate'
SUPERUSER = 'postgres'
SERVER_USER = 'elevate-test'
READY_TIMEOUT = 60.0          # a loaded 2-core machine; a healthy start takes well under 1 s
STOP_TIMEOUT = 20.0

_live = set()                 # started servers, stopped at exit if a test did not


def _version_key(path):
    m = re.search(r'/postgresql/(\d+)(?:\.(\d+))?/bin$', path)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (0, 0)


def bindir():
    """The directory of Debian's server binaries: ELEVATE_PG_BINDIR, else the newest
    /usr/lib/postgresql/<version>/bin with initdb and postgres in it."""
    want = ('initdb', 'postgres', 'pg_isready', 'psql')
    env = os.environ.get('ELEVATE_PG_BINDIR')
    dirs = [env] if env else sorted(glob.glob('/usr/lib/postgresql/*/bin'), key=_version_key,
                                    reverse=True)
    for d in dirs:
        if all(os.access(os.path.join(d, b), os.X_OK) for b in want):
            return d
    raise RuntimeError('no PostgreSQL server binaries (%s) in %s: install Debian\'s '
                       'postgresql and postgresql-client (scripts/deps.sh does)' %
                       (', '.join(want), env or '/usr/lib/postgresql/*/bin'))


def server_user():
    """The account the server runs as: None (this process's own) unless we are root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get('ELEVATE_PG_USER', SERVER_USER)
    for attempt in range(10):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        if name != SERVER_USER:
            raise RuntimeError('ELEVATE_PG_USER=%s: no such user' % name)
        # another test run may be adding it at the same moment (exit 9: it exists now;
        # 10: /etc/passwd is locked by the other useradd)
        r = subprocess.run(['useradd', '--system', '--user-group', '--no-create-home',
                            '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin',
                            '--comment', 'elevate test PostgreSQL servers', name],
                           capture_output=True, text=True)
        if r.returncode not in (0, 9, 10):
            break
        if r.returncode == 10:
            time.sleep(0.1 * (attempt + 1))
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return pwd.getpwnam('nobody')


def _clean_env(**extra):
    """Our environment without PG* variables (a PGPASSWORD or PGHOST from the caller's
    shell must not change what the tests connect to) and in the C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('PG')}
    env.update(LC_ALL='C', LANG='C')
    env.update(extra)
    return env


def _proc_start_time(pid):
    """Field 22 of /proc/PID/stat, to tell a process from a later one with its pid."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            return int(f.read().rsplit(')', 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def alive(procs):
    """Those of procs ({pid: start time}) that still run (zombies count as gone)."""
    out = {}
    for pid, start in procs.items():
        if _proc_start_time(pid) != start:
            continue
        try:
            with open('/proc/%d/status' % pid) as f:
                if re.search(r'^State:\s+Z', f.read(), re.M):
                    continue
        except OSError:
            continue
        out[pid] = start
    return out


def process_ids(pid):
    """{'uid': (real, effective, saved, fs), 'gid': (...)} of a running process."""
    with open('/proc/%d/status' % pid) as f:
        text = f.read()
    ids = {}
    for key in ('Uid', 'Gid'):
        ids[key.lower()] = tuple(int(x) for x in re.search(r'^%s:\s+(.*)$' % key, text,
                                                             re.M).group(1).split())
    return ids


class PostgreSQL:
    """One PostgreSQL server in its own temporary directory (see the module's comment).
    settings: extra server settings ({'name': 'value'}) over the test defaults, which
    trade durability for speed (fsync off: nothing here survives a crash of the machine)."""

    DEFAULTS = {
        'fsync': 'off',
        'full_page_writes': 'off',
        'shared_buffers': '32MB',
        'max_connections': '100',
        'log_min_messages': 'warning',
        'log_line_prefix': '%m [%p] %q%u@%d ',
    }

    def __init__(self, tmp=None, settings=None):
        self.parent_tmp = tmp
        self.settings = dict(self.DEFAULTS)
        self.settings.update(settings or {})
        self.bindir = bindir()
        self.user = server_user()
        self.dir = None
        self.proc = None
        self.port = None
        self.timings = {}
        self._dbs = 0

    def _place(self, d):
        """Where everything lives: the temporary directory d and the files in it."""
        self.dir = d
        self.data = os.path.join(d, 'data')
        self.socket_dir = os.path.join(d, 'sock')
        self.passfile = os.path.join(d, 'pgpass')
        self.admin_passfile = os.path.join(d, 'pgpass.admin')
        self.log_path = os.path.join(d, 'postgres.log')

    def url_for(self, dbname=DATABASE, user=ROLE, passfile=None):
        return 'postgresql://%s@127.0.0.1:%d/%s?passfile=%s' % (
            user, self.port, dbname, urllib.parse.quote(passfile or self.passfile, safe='/'))

    def dsn_for(self, dbname=DATABASE, user=ROLE, passfile=None):
        return 'host=127.0.0.1 port=%d dbname=%s user=%s passfile=%s' % (
            self.port, dbname, user, passfile or self.passfile)

    @property
    def url(self):
        """libpq URL of the database `elevate` as the role `elevate`, password from passfile."""
        return self.url_for()

    @property
    def dsn(self):
        return self.dsn_for()

    @property
    def admin_url(self):
        return self.url_for(dbname='postgres', user=SUPERUSER, passfile=self.admin_passfile)

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    # ---- life ----
    def _as_server(self, argv):
        """argv run as the server's user, dying with us (SIGQUIT: immediate shutdown)."""
        pre = ['setpriv', '--pdeathsig', 'SIGQUIT']
        if self.user is not None:
            pre += ['--reuid=%d' % self.user.pw_uid, '--regid=%d' % self.user.pw_gid,
                    '--clear-groups']
        return pre + ['--'] + argv

    def _give(self, path):
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _write_private(self, path, text, give=False):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        if give:
            self._give(path)

    def start(self):
        """initdb, start, create the role and the database; returns self."""
        assert self.proc is None, 'already started'
        self._place(tempfile.mkdtemp(prefix='elevate-pg-', dir=self.parent_tmp))
        _live.add(self)
        try:
            self._give(self.dir)
            os.mkdir(self.socket_dir, 0o700)
            self._give(self.socket_dir)
            self._password = secrets.token_urlsafe(24)
            self._admin_password = secrets.token_urlsafe(24)
            t0 = time.monotonic()
            self._initdb()
            t1 = time.monotonic()
            self._run()
            t2 = time.monotonic()
            self._create_role_and_database()
            t3 = time.monotonic()
            self.timings = {'initdb_s': t1 - t0, 'start_s': t2 - t1, 'setup_s': t3 - t2,
                            'total_s': t3 - t0}
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb(self):
        pwfile = os.path.join(self.dir, 'initdb.pw')
        self._write_private(pwfile, self._admin_password + '\n', give=True)
        try:
            r = subprocess.run(self._as_server([
                os.path.join(self.bindir, 'initdb'), '-D', self.data, '-U', SUPERUSER,
                '--pwfile=' + pwfile, '--auth=scram-sha-256', '--encoding=UTF8',
                '--locale=C', '--no-sync', '--no-instructions']),
                cwd=self.dir, env=_clean_env(HOME=self.dir), capture_output=True, text=True,
                timeout=120)
        finally:
            os.unlink(pwfile)
        if r.returncode != 0:
            raise RuntimeError('initdb failed (%d): %s%s' % (r.returncode, r.stdout[-2000:],
                                                             r.stderr[-2000:]))

    def _run(self):
        """Starts the server on a free port (another one if that port was taken in between)
        and waits until it accepts connections."""
        for attempt in range(5):
            self.port = self.port if self.port and attempt == 0 else free_port()
            argv = [os.path.join(self.bindir, 'postgres'), '-D', self.data,
                    '-c', 'listen_addresses=127.0.0.1', '-c', 'port=%d' % self.port,
                    '-c', 'unix_socket_directories=' + self.socket_dir,
                    '-c', 'unix_socket_permissions=0700']
            for k, v in sorted(self.settings.items()):
                argv += ['-c', '%s=%s' % (k, v)]
            log = open(self.log_path, 'a')
            start = log.tell()
            try:
                self.proc = subprocess.Popen(self._as_server(argv), cwd=self.dir,
                                             env=_clean_env(HOME=self.dir),
                                             stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT)
            finally:
                log.close()
            if self._wait_ready(start):
                return
        raise RuntimeError('PostgreSQL found no free port in 5 attempts:\n' + self.logtail())

    def _wait_ready(self, log_start):
        """True once pg_isready says the server accepts connections; False if it exited
        because its port was taken; raises on any other exit or at the deadline."""
        deadline = time.monotonic() + READY_TIMEOUT
        isready = [os.path.join(self.bindir, 'pg_isready'), '-q', '-h', '127.0.0.1',
                   '-p', str(self.port), '-d', 'postgres', '-t', '2']
        while True:
            if self.proc.poll() is not None:
                with open(self.log_path) as f:
                    f.seek(log_start)
                    text = f.read()
                self.proc = None
                if 'could not bind' in text or 'Address already in use' in text:
                    return False
                raise RuntimeError('PostgreSQL exited at start-up:\n' + text[-3000:])
            if subprocess.run(isready, env=_clean_env()).returncode == 0:
                return True
            if time.monotonic() > deadline:
                raise RuntimeError('PostgreSQL did not accept connections within %.0f s:\n%s'
                                   % (READY_TIMEOUT, self.logtail()))
            time.sleep(0.02)

    def _create_role_and_database(self):
        lines = ['127.0.0.1:%d:*:%s:%s' % (self.port, ROLE, self._password),
                 '%s:%d:*:%s:%s' % (self.socket_dir, self.port, ROLE, self._password)]
        self._write_private(self.passfile, '\n'.join(lines) + '\n')
        lines = ['127.0.0.1:%d:*:%s:%s' % (self.port, SUPERUSER, self._admin_password),
                 '%s:%d:*:%s:%s' % (self.socket_dir, self.port, SUPERUSER,
                                    self._admin_password)]
        self._write_private(self.admin_passfile, '\n'.join(lines) + '\n')
        # on stdin: a password in argv is visible to every user of the machine
        self.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (ROLE, self._password), admin=True)
        self.psql('CREATE DATABASE %s OWNER %s' % (DATABASE, ROLE), admin=True)

    def psql(self, sql, admin=False, dbname=None, url=None, check=True):
        """Runs sql (on stdin, one transaction per statement as psql does) as the role
        elevate (admin: the superuser) and returns psql's unaligned, tuples-only output."""
        target = url or (self.url_for(dbname=dbname or 'postgres', user=SUPERUSER,
                                      passfile=self.admin_passfile) if admin else
                         self.url_for(dbname=dbname or DATABASE))
        r = subprocess.run([os.path.join(self.bindir, 'psql'), '-X', '-q', '-A', '-t',
                            '-v', 'ON_ERROR_STOP=1', '-d', target], input=sql, text=True,
                           capture_output=True, env=_clean_env(), timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError('psql failed (%d): %s' % (r.returncode, r.stderr.strip()))
        return r.stdout if check else r

    def new_database(self, name=None):
        """A fresh empty database owned by elevate; returns its URL."""
        if name is None:
            self._dbs += 1
            name = 'elevate_%d' % self._dbs
        if not re.fullmatch(r'[a-z_][a-z0-9_]{0,62}', name):
            raise ValueError('database name %r: lower case letters, digits, _' % name)
        self.psql('CREATE DATABASE %s OWNER %s' % (name, ROLE), admin=True)
        return self.url_for(dbname=name)

    def processes(self):
        """{pid: start time} of the server: the postmaster and its children."""
        if self.proc is None or self.proc.poll() is not None:
            return {}
        return {pid: _proc_start_time(pid) for pid in [self.proc.pid] + child_pids(self.proc.pid)}

    def stop(self, mode='fast', remove=True):
        """Stops the server (fast: SIGINT, open sessions are cut, then a clean checkpoint;
        immediate: SIGQUIT, as a crash; each escalates if it takes too long) and waits for
        every process of it; then removes the directory unless remove is False (restart()
        keeps it). Idempotent."""
        if self.proc is not None:
            procs = self.processes()
            sigs = [signal.SIGINT if mode == 'fast' else signal.SIGQUIT, signal.SIGQUIT,
                    signal.SIGKILL]
            for sig in sigs:
                if self.proc.poll() is not None:
                    break
                try:
                    self.proc.send_signal(sig)
                    self.proc.wait(STOP_TIMEOUT if sig != signal.SIGKILL else 10)
                except subprocess.TimeoutExpired:
                    continue
            self.proc = None
            # children left by a postmaster that was killed notice its death and exit
            deadline = time.monotonic() + 10
            while alive(procs) and time.monotonic() < deadline:
                time.sleep(0.02)
            for pid in alive(procs):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if remove:
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
            _live.discard(self)

    def restart(self, mode='fast'):
        """Stops the server and starts it again on the same port with the same data, as
        a database outage does to its clients."""
        self.stop(mode=mode, remove=False)
        self._run()
        return self

    def logtail(self, n=3000):
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()[-n:]
        except OSError:
            return ''

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


_shared = None


def shared():
    """One server for every test in this process that asks for it (started on first use,
    stopped at exit). Tests that need a clean slate take new_database() on it."""
    global _shared
    if _shared is None or _shared.proc is None or _shared.proc.poll() is not None:
        if _shared is not None:
            _shared.stop()
        _shared = PostgreSQL().start()
    return _shared


@atexit.register
def _stop_all():
    for pg in list(_live):
        try:
            pg.stop()
        except Exception:  # noqa: BLE001 - at exit, stop the others all the same
            pass
