"""make bench (bench/run.sh): the api, page, create, approve, creds and scale benchmarks, one line
each, every figure next to a baseline measured in the same run (bench/README.md).
Starts the AWS emulator, an SMTP sink and a real elevated (parent, front, engine) the way
the integration tests do (tests/integration/harness.py), and drives them with the
project's own load generator (build/bench/loadgen). Loopback only.
Environment: BENCH_SECONDS (per load run, default 3), BENCH_SCALE (default "10000,1000000"),
BENCH_ONLY (comma-separated subset of api,page,create,approve,creds,scale), BENCH_KEEP=1 (keep
the temporary directory), BENCH_PERF=DIR (perf record the engine and front, see profile())."""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))
import harness  # noqa: E402

B = os.path.join(ROOT, 'build', 'bench')
SECS = float(os.environ.get('BENCH_SECONDS', 3))
ONLY = set(filter(None, os.environ.get('BENCH_ONLY', '').split(',')))
CONNS = (1, 16, 64)


def want(name):
    return not ONLY or name in ONLY


def kv(line):
    return dict(p.split('=', 1) for p in line.split() if '=' in p)


def loadgen(port, paths, conns, user=None, b=None, method='GET', body=None, n=None,
            secs=SECS):
    cmd = [os.path.join(B, 'loadgen'), '-c', str(conns), '-d', str(secs), '-m', method]
    if user:
        cmd += ['-k', os.path.join(b.users[user].cfgdir, 'key'), '-u', user,
                '-n', str(n or int(max(30000, secs * 15000)))]
    if body is not None:
        cmd += ['-b', body]
    r = subprocess.run(cmd + [str(port)] + list(paths), capture_output=True, text=True,
                       timeout=secs + 120)
    if r.returncode != 0:
        raise RuntimeError('loadgen: %s' % r.stderr)
    if r.stderr.strip():
        print('  (%s)' % r.stderr.strip(), file=sys.stderr)
    return kv(r.stdout)


def line(name, **f):
    print('bench %s %s' % (name, ' '.join('%s=%s' % kv_ for kv_ in f.items())), flush=True)


def median_ms(argv, n, env=None, before=None):
    v = []
    for _ in range(n):
        if before:
            before()
        t0 = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, env=env)
        v.append((time.perf_counter() - t0) * 1000)
        if r.returncode != 0:
            raise RuntimeError('%s: %s' % (' '.join(argv), r.stderr.decode()[-500:]))
    return statistics.median(v)


def engine_pid(b):
    """The child of the broker's parent that holds the store open."""
    kids = open('/proc/%d/task/%d/children' % (b.proc.pid, b.proc.pid)).read().split()
    for k in kids:
        try:
            for fd in os.listdir('/proc/%s/fd' % k):
                if os.readlink('/proc/%s/fd/%s' % (k, fd)).endswith('elevate.db'):
                    return int(k)
        except OSError:
            continue
    raise RuntimeError('no engine process among %s' % kids)


def rss_mb(pid):
    for ln in open('/proc/%d/status' % pid):
        if ln.startswith('VmRSS:'):
            return int(ln.split()[1]) / 1024.0
    return 0.0


def profile(b, name, conns):
    """BENCH_PERF=DIR: perf record -g of the engine and the front during one load run
    (BENCH_PERF_AT=NAME:CONNS, default api-get:64), into DIR/engine.data and
    DIR/front.data (perf report -i ...)."""
    out = os.environ.get('BENCH_PERF')
    if not out or os.environ.get('BENCH_PERF_AT', 'api-get:64') != '%s:%d' % (name, conns):
        return None
    os.makedirs(out, exist_ok=True)
    eng = engine_pid(b)
    kids = open('/proc/%d/task/%d/children' % (b.proc.pid, b.proc.pid)).read().split()
    front = [int(k) for k in kids if int(k) != eng][0]
    return subprocess.Popen(
        'perf record -g -o %s/engine.data -p %d -- sleep %s & '
        'perf record -g -o %s/front.data -p %d -- sleep %s & wait' % (
            out, eng, SECS - 0.5, out, front, SECS - 0.5), shell=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))   # stop what we started
    tmp = tempfile.mkdtemp(prefix='elevate-bench-')
    emu = harness.Emulator(tmp).start()
    smtp = harness.SMTPServer(tmp).start()
    pf = os.path.join(tmp, 'bare.port')
    bare = subprocess.Popen([os.path.join(B, 'bare'), pf])
    harness.wait_for(lambda: os.path.exists(pf) and open(pf).read().strip(), 10, what='bare')
    bare_port = int(open(pf).read())
    b = harness.Broker(emu, tmp=os.path.join(tmp, 'broker'), smtp_port=smtp.port,
                       config={'log': {'level': 'info'},
                               'limits': {'max_connections_per_address': 0}})
    b.start()
    try:
        base = {c: loadgen(bare_port, ['/v1/requests/r-bench'], c) for c in CONNS}
        for c in CONNS:
            line('bare', conns=c, rps=base[c]['rps'], p50_ms=base[c]['p50_ms'],
                 p99_ms=base[c]['p99_ms'])
        rid = b.request(user='alice', profile='dev', reason='bench', ticket=None)['id']
        # A signed call costs one Ed25519 verification: what the machine's cores can
        # check is the most the signed API could serve, whatever else it did.
        ver = kv(subprocess.run([os.path.join(B, 'store_bench'), 'verify', '1'],
                                capture_output=True, text=True, check=True).stdout)
        ceiling = float(ver['rps']) * (os.cpu_count() or 1)
        line('verify', per_core_rps=ver['rps'], cores=os.cpu_count() or 1,
             ceiling_rps='%.0f' % ceiling)

        def vs_bare(name, c, r, **extra):
            line(name, conns=c, rps=r['rps'], p50_ms=r['p50_ms'], p99_ms=r['p99_ms'],
                 errors=r['errors'], codes=r['codes'], **extra,
                 ratio='%.3f' % (float(r['rps']) / float(base[c]['rps'])))
        if want('api'):
            for path, name in (('/v1/requests/' + rid, 'api-get'),
                               ('/v1/requests', 'api-list')):
                for c in CONNS:
                    perf = profile(b, name, c)
                    r = loadgen(b.port, [path], c, user='alice', b=b)
                    vs_bare(name, c, r,
                            of_ceiling='%.3f' % (float(r['rps']) / ceiling))
                    if perf:
                        perf.wait()
        if want('page'):
            def page_path(req_id):
                msgs = harness.wait_mail(smtp, 1, 30, pred=lambda m: req_id in str(m['raw']))
                text, _ = harness.mail_links(msgs[0]['msg'])
                return '/approve/' + text[0].rsplit('/', 1)[1]
            path = page_path(rid)
            for c in CONNS:
                perf = profile(b, 'page', c)
                vs_bare('page', c, loadgen(b.port, [path], c))
                if perf:
                    perf.wait()
            # the page of a request already decided (denied by another approver)
            rid2 = b.request(user='alice', profile='dev', reason='bench', ticket=None)['id']
            path2 = page_path(rid2)
            st, d = b.api('dave', 'POST', '/v1/requests/%s/deny' % rid2, {'comment': 'bench'})
            assert st == 200, d
            for c in CONNS:
                perf = profile(b, 'page-decided', c)
                vs_bare('page-decided', c, loadgen(b.port, [path2], c))
                if perf:
                    perf.wait()
        if want('create'):
            sq = kv(subprocess.run([os.path.join(B, 'store_bench'), 'insert',
                                    os.path.join(tmp, 'insert.db'), str(SECS)],
                                   capture_output=True, text=True, check=True).stdout)
            body = '{"profile":"dev","duration":"15m","reason":"bench"}'
            for c in (1, 16):
                perf = profile(b, 'create', c)
                r = loadgen(b.port, ['/v1/requests'], c, user='bob', b=b, method='POST',
                            body=body, n=20000)
                if perf:
                    perf.wait()
                line('create', conns=c, rps=r['rps'], p50_ms=r['p50_ms'], p99_ms=r['p99_ms'],
                     errors=r['errors'], codes=r['codes'], sqlite_insert_rps=sq['rps'],
                     ratio='%.3f' % (float(r['rps']) / float(sq['rps'])))
        if want('approve'):
            approve(b, emu)
        if want('creds'):
            b.approve_until(rid)
            env = dict(os.environ, ELEVATE_CONFIG_DIR=b.users['alice'].cfgdir, HOME=b.tmp,
                       ELEVATE_CACHE_DIR=os.path.join(tmp, 'cache'))
            argv = [os.path.join(ROOT, 'bin', 'elevate'), 'creds', '--profile', 'dev']
            subprocess.run(argv, env=env, check=True, capture_output=True)

            def clear():
                subprocess.run(['rm', '-rf', env['ELEVATE_CACHE_DIR']], check=True)
            uncached = median_ms(argv, 20, env, before=clear)
            subprocess.run(argv, env=env, check=True, capture_output=True)
            cached = median_ms(argv, 50, env)
            small = os.path.join(tmp, 'small.json')
            with open(small, 'w') as f:
                f.write('{"Version": 1}\n')
            cat = median_ms(['cat', small], 50)
            line('creds', cached_ms='%.2f' % cached, uncached_ms='%.2f' % uncached,
                 cat_ms='%.2f' % cat, ratio_cached='%.2f' % (cached / cat))
        if want('scale'):
            scale(b, tmp)
    finally:
        b.stop()
        bare.terminate()
        bare.wait()
        smtp.stop()
        emu.stop()
        if not os.environ.get('BENCH_KEEP'):
            shutil.rmtree(tmp, ignore_errors=True)   # the 1M-row store is ~250 MB
    return 0


def approve(b, emu, n=10, aws_ms=1000):
    """The approver's POST while AWS takes aws_ms to answer AssumeRole (an emulator latency
    fault): how long the answer took, and how long until the request was active."""
    answer, active = [], []
    emu.faults(latency_ms=aws_ms, actions=['AssumeRole'])
    try:
        for _ in range(n):
            rid = b.request(user='alice', profile='dev', reason='bench', ticket=None)['id']
            t0 = time.perf_counter()
            st, d = b.approve(rid, 'carol')
            answer.append((time.perf_counter() - t0) * 1000)
            assert st == 200 and d['state'] == 'activating', d
            b.wait_state(rid, 'active', 30)
            active.append((time.perf_counter() - t0) * 1000)
    finally:
        emu.faults()
    a = statistics.median(answer)
    line('approve', aws_latency_ms=aws_ms, answer_ms='%.1f' % a,
         active_ms='%.0f' % statistics.median(active), ratio='%.3f' % (a / aws_ms))


def scale(b, tmp):
    db = os.path.join(b.state_dir, 'elevate.db')
    done = 0
    out = {}
    for n in [int(x) for x in os.environ.get('BENCH_SCALE', '10000,1000000').split(',')]:
        tag = '%dk' % (n // 1000) if n < 1000000 else '%dm' % (n // 1000000)
        b.stop()
        g = kv(subprocess.run([os.path.join(B, 'store_bench'), 'gen', db, str(n - done),
                               'alice,bob'], capture_output=True, text=True,
                              check=True).stdout)
        done = n
        d = kv(subprocess.run([os.path.join(B, 'store_bench'), 'deadline', db, '101'],
                              capture_output=True, text=True, check=True).stdout)
        t0 = time.perf_counter()
        b.start()
        start_s = time.perf_counter() - t0
        m = loadgen(b.port, ['/metrics'], 1, secs=max(SECS, 2))
        lst = median_ms([os.path.join(ROOT, 'bin', 'elevate'), 'list'], 5,
                        dict(os.environ, ELEVATE_CONFIG_DIR=b.users['alice'].cfgdir,
                             HOME=b.tmp))
        rss = rss_mb(engine_pid(b))
        out[tag] = d
        line('scale', requests=n, gen_s=g['seconds'], start_s='%.2f' % start_s,
             **{'rss_mb_' + tag: '%.1f' % rss, 'wake_us_' + tag: d['median_us'],
                'metrics_ms_' + tag: m['p50_ms'], 'list_ms_' + tag: '%.1f' % lst})
    if len(out) == 2:
        (a, x), (c, y) = out.items()
        line('scale', **{'wake_ratio_%s_%s' % (c, a): '%.2f' % (
            float(y['median_us']) / max(float(x['median_us']), 1.0))})


if __name__ == '__main__':
    sys.exit(main())
