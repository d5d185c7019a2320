"""Issue 10: the audit export loses nothing (full disk, torn line, re-export), rotates,
is signed within a second with a published head (file, syslog, S3 Object Lock) that catches
a cut export, and every record reaches syslog at its own facility."""
import json
import os
import random
import socket
import stat
import subprocess
import urllib.error
import urllib.request

from harness import BIN, BROKER_KEY, BROKER_SECRET, wait_for, wait_mail


def _pub(b):
    return open(os.path.join(b.state_dir, 'audit.pub')).read().strip()


def _lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def _healthz(b):
    try:
        with urllib.request.urlopen(b.url + '/healthz', timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _metric(b, name):
    with urllib.request.urlopen(b.url + '/metrics', timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + ' '):
                return float(line.split()[1])
    raise AssertionError('no metric ' + name)


def _verify(b, *args):
    return b.cli('erin', 'audit', 'verify', *args)


def _store_tail(b):
    return b.audit()[-1]['seq']


def _some_requests(b, n):
    for _ in range(n):
        b.request(profile='dev', duration='15m')


def test_full_filesystem_loses_nothing(ctx):
    """audit.file on a 64 KiB tmpfs that fills up: the API goes on, the export stops where
    it is (no torn or skipped record), /healthz says 503 with the reason, the failure is
    counted and mailed to the auditors once; freeing space resumes the export."""
    b = ctx.broker()
    mnt = os.path.join(b.tmp, 'small')
    os.makedirs(mnt)
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt],
                       capture_output=True, text=True)
    assert r.returncode == 0, 'cannot mount a tmpfs (tests run as root): ' + r.stderr
    ctx._cleanup.append(lambda: subprocess.run(['umount', '-l', mnt]))
    smtp = ctx.smtp(b.tmp).start()
    b.config['smtp'] = {'url': 'smtp://127.0.0.1:%d' % smtp.port, 'from': 'elevate@example.com'}
    b.config['audit']['file'] = os.path.join(mnt, 'audit.jsonl')
    b.write_config()
    b.start()
    path = b.config['audit']['file']
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # fill the filesystem
    filler = os.path.join(mnt, 'filler')
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b'x' * 512) > 0:
            pass
    except OSError:
        pass
    os.close(fd)
    _some_requests(b, 15)   # each answered 201 (b.request asserts it): more than a page
    wait_for(lambda: _healthz(b)[0] == 503, 10, what='/healthz 503')
    st, j = _healthz(b)
    assert 'audit export' in j['error']['message'] and 'No space left' in j['error']['message'], j
    assert _metric(b, 'elevate_audit_export_failed_total') >= 1
    mails = wait_mail(smtp, 1, 15, pred=lambda m: 'audit export' in str(m['msg']['Subject']))
    assert mails[0]['rcpt'] == ['erin@example.com']
    # whatever reached the file is whole records, contiguous from 1
    got = _lines(path)
    assert [r['seq'] for r in got] == list(range(1, len(got) + 1))
    assert got[-1]['seq'] < _store_tail(b)
    _some_requests(b, 2)
    os.unlink(filler)
    wait_for(lambda: _healthz(b)[0] == 200, 15, what='/healthz 200 after space is freed')
    b.stop()
    # once per outage, however many attempts failed
    assert len([m for m in smtp.messages() if 'audit export' in str(m['msg']['Subject'])]) == 1
    assert 'audit.export_failed' in b.events()
    got = _lines(path)
    assert [r['seq'] for r in got] == list(range(1, _store_tail(b) + 1)), 'a gap or a duplicate'
    r = _verify(b, path, '--pubkey', _pub(b))
    assert r.returncode == 0 and 'audit OK' in r.stdout, r.stdout + r.stderr


def test_dev_full_keeps_the_api_and_says_why(ctx):
    """audit.file = /dev/full: every write fails (ENOSPC); requests still work, /healthz
    names the device, and nothing is counted as exported."""
    b = ctx.broker(config={'audit': {'file': '/dev/full'}})
    b.start(wait=False)
    wait_for(lambda: _engine_answers(b), 20, what='elevated serving')
    mode = stat.S_IMODE(os.stat('/dev/full').st_mode)
    b.request(profile='dev')
    wait_for(lambda: _healthz(b)[0] == 503, 10, what='/healthz 503')
    st, j = _healthz(b)
    assert '/dev/full' in j['error']['message'] and 'No space left' in j['error']['message'], j
    assert _metric(b, 'elevate_audit_export_failed_total') >= 1
    assert stat.S_IMODE(os.stat('/dev/full').st_mode) == mode, 'the device was chmod-ed'
    assert 'audit export stopped at seq 0' in b.logtext()


def _engine_answers(b):
    """The engine answers /healthz (200, or 503 for its own reason): not the front's 503
    while no engine is linked yet (the parent binds the listener before either child)."""
    try:
        st, j = _healthz(b)
    except (OSError, ValueError):
        return False
    return st == 200 or 'restarting' not in j.get('error', {}).get('message', '')


def test_torn_line_resumes_without_duplicate_or_gap(ctx):
    b = ctx.broker().start()
    _some_requests(b, 3)
    b.stop()
    path = b.audit_file
    data = open(path, 'rb').read()
    last_nl = data.rstrip(b'\n').rfind(b'\n')
    cut = last_nl + 1 + (len(data) - last_nl) // 2      # in the middle of the last record
    with open(path, 'r+b') as f:
        f.truncate(cut)
    torn_seq = json.loads(data[last_nl + 1:].decode())['seq']
    b.start()
    _some_requests(b, 1)
    b.stop()
    assert 'cut a torn last line' in b.logtext()
    seqs = [r['seq'] for r in _lines(path)]
    assert seqs == list(range(1, _store_tail(b) + 1)), 'a gap or a duplicate'
    assert torn_seq in seqs
    r = _verify(b, path, '--pubkey', _pub(b))
    assert r.returncode == 0 and 'audit OK' in r.stdout, r.stdout + r.stderr


def test_audit_export_command_reexports_and_never_overwrites(ctx):
    b = ctx.broker().start()
    _some_requests(b, 2)
    b.stop()
    out = os.path.join(b.tmp, 'again.jsonl')
    cmd = [os.path.join(BIN, 'elevated'), 'audit-export', '--config', b.config_path,
           '--from', '1', '--to', out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert open(out).read() == open(b.audit_file).read()
    before = open(out).read()
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode != 0 and 'never overwrites' in r.stderr, r.stderr
    assert open(out).read() == before
    # from the middle: a partial export that verifies as one
    mid = os.path.join(b.tmp, 'mid.jsonl')
    r = subprocess.run(cmd[:-4] + ['--from', '5', '--to', mid], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _lines(mid)[0]['seq'] == 5
    r = _verify(b, mid, '--partial')
    assert r.returncode == 0, r.stdout
    r = subprocess.run(cmd[:-4] + ['--from', '100000', '--to', mid + '2'], capture_output=True,
                       text=True)
    assert r.returncode != 0 and 'no record from seq 100000' in r.stderr


def test_rotation_and_verify_across_files(ctx):
    b = ctx.broker(config={'audit': {'rotate_bytes': 1500}})
    b.start()
    _some_requests(b, 8)
    b.stop()
    d = os.path.dirname(b.audit_file)
    rotated = sorted(n for n in os.listdir(d) if n.startswith('audit-') and n.endswith('.jsonl'))
    assert len(rotated) >= 2, os.listdir(d)
    files = [os.path.join(d, n) for n in rotated] + [b.audit_file]
    for p in files:
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p
        assert os.path.getsize(p) <= 1500, p
    for n in rotated:   # named by their first seq
        assert _lines(os.path.join(d, n))[0]['seq'] == int(n[6:18]), n
    shuffled = files[:]
    random.Random(7).shuffle(shuffled)
    r = _verify(b, *shuffled, '--pubkey', _pub(b))
    assert r.returncode == 0 and 'audit OK' in r.stdout, r.stdout + r.stderr
    assert ('seq 1..%d' % _store_tail(b)) in r.stdout, r.stdout
    # a missing middle file is a gap naming the files on both sides
    r = _verify(b, files[0], files[2], '--pubkey', _pub(b))
    assert r.returncode == 1, r.stdout
    assert files[0] in r.stdout and files[2] in r.stdout and 'missing' in r.stdout, r.stdout
    # the same file twice
    r = _verify(b, files[0], files[0], '--pubkey', _pub(b))
    assert r.returncode == 1 and 'overlap' in r.stdout, r.stdout
    # an edit in the second file is reported in that file, with its own line number
    lines = open(files[1]).read().splitlines(True)
    rec = json.loads(lines[1])
    rec['actor'] = 'mallory'
    lines[1] = json.dumps(rec, separators=(',', ':'), sort_keys=True) + '\n'
    open(files[1], 'w').writelines(lines)
    r = _verify(b, *files, '--pubkey', _pub(b))
    assert r.returncode == 1 and (files[1] + ' line 2') in r.stdout, r.stdout


def test_rotation_by_age(ctx):
    b = ctx.broker(config={'audit': {'rotate_age': '2s'}})
    b.start()
    _some_requests(b, 1)
    d = os.path.dirname(b.audit_file)
    # the auditor rotates an idle file once its first record is old enough
    wait_for(lambda: any(n.startswith('audit-') for n in os.listdir(d)), 15,
             what='a rotation by age')
    _some_requests(b, 1)
    b.stop()
    files = [os.path.join(d, n) for n in os.listdir(d) if n.startswith('audit')
             and n.endswith('.jsonl')]
    r = _verify(b, *files, '--pubkey', _pub(b))
    assert r.returncode == 0, r.stdout + r.stderr


def test_signed_head_within_a_second_and_cut_detected(ctx):
    b = ctx.broker(config={'audit': {'head_file': None, 'checkpoint_every': 100000}})
    head = os.path.join(b.tmp, 'audit.head')
    b.config['audit']['head_file'] = head
    b.write_config()
    b.start()
    j = b.request(profile='dev')
    created = [r['seq'] for r in b.audit(j['id']) if r['event'] == 'request.created'][0]
    # the auditor's timer signs it (checkpoint_every alone never would here)
    wait_for(lambda: os.path.exists(head) and json.load(open(head))['seq'] > created, 10,
             what='a signed head covering the new record')
    h = json.load(open(head))
    recs = {r['seq']: r for r in b.audit()}
    assert recs[h['seq']]['event'] == 'audit.checkpoint'
    assert recs[h['seq']]['data']['signed_seq'] == h['seq'] - 1
    assert oct(os.stat(head).st_mode & 0o777) == '0o644'
    b.stop()
    h = json.load(open(head))
    pub = _pub(b)
    r = _verify(b, b.audit_file, '--pubkey', pub, '--head', head)
    assert r.returncode == 0 and 'not cut' in r.stdout, r.stdout + r.stderr
    # cut right after an earlier checkpoint: the chain alone verifies, the head does not
    lines = open(b.audit_file).read().splitlines(True)
    ck = [i for i, l in enumerate(lines) if json.loads(l)['event'] == 'audit.checkpoint']
    assert len(ck) >= 2
    cut = os.path.join(b.tmp, 'cut.jsonl')
    open(cut, 'w').writelines(lines[:ck[-2] + 1])
    r = _verify(b, cut, '--pubkey', pub)
    assert r.returncode == 0, 'the chain alone cannot tell: ' + r.stdout
    r = _verify(b, cut, '--pubkey', pub, '--head', head)
    assert r.returncode == 1 and 'were cut' in r.stdout, r.stdout
    # a rewritten last record (hash recomputed) differs from the signed head
    forged = os.path.join(b.tmp, 'forged.jsonl')
    last = json.loads(lines[-1])
    last['hash'] = '00' * 32
    open(forged, 'w').writelines(lines[:-1] + [json.dumps(last, separators=(',', ':'),
                                                          sort_keys=True) + '\n'])
    r = _verify(b, forged, '--pubkey', pub, '--head', head)
    assert r.returncode == 1, r.stdout
    # a head signed by another key is refused
    other = b.cli('erin', 'audit', 'verify', b.audit_file, '--pubkey',
                  'ed25519:' + 'A' * 43 + '=', '--head', head)
    assert other.returncode != 0


def test_syslog_gets_every_record_at_its_facility(ctx):
    b = ctx.broker()
    sock_path = os.path.join(b.tmp, 'log.sock')
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock_path)
    s.settimeout(0.2)
    ctx._cleanup.append(s.close)
    b.config['audit'].update({'syslog': True, 'syslog_socket': sock_path,
                              'syslog_facility': 'local3'})
    b.config['log'] = {'level': 'error', 'syslog': False}   # neither may hold records back
    b.write_config()
    b.start()
    _some_requests(b, 2)
    b.stop()
    msgs = []
    while True:
        try:
            msgs.append(s.recv(1 << 20).decode())
        except socket.timeout:
            break
    import re
    pat = re.compile(r'^<(\d+)>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (\S+) elevated\[(\d+)\]: '
                     r'(audit|audit-head) (\{.*\})$', re.S)
    recs, heads = [], []
    for m in msgs:
        g = pat.match(m)
        assert g, 'not RFC 3164: %r' % m[:200]
        assert int(g.group(1)) == 19 * 8 + 6, m[:40]      # local3.info
        (recs if g.group(5) == 'audit' else heads).append(json.loads(g.group(6)))
    assert [r['seq'] for r in recs] == list(range(1, _store_tail(b) + 1))
    assert recs == _lines(b.audit_file)
    assert heads and heads[-1]['seq'] == _store_tail(b)


def test_s3_anchor_with_object_lock(ctx):
    b = ctx.broker(config={'audit': {'anchor': 's3://audit-anchor/elevate/heads'}})
    b.start()
    _some_requests(b, 1)
    b.stop()
    objs = {o['key']: o for o in b.emulator.control('GET', '/s3')
            if o['bucket'] == 'audit-anchor'}
    tail = _store_tail(b)
    key = 'elevate/heads/head-%012d.json' % tail
    assert key in objs and 'elevate/heads/latest.json' in objs, list(objs)
    v = objs[key]['versions'][-1]
    assert v['lock_mode'] == 'COMPLIANCE' and v['retain_until'] > v['retain_until'][:4]
    assert json.loads(v['body'])['seq'] == tail
    puts = [e for e in b.emulator.log_entries() if e.get('service') == 's3']
    assert puts and all(e['status'] == 200 for e in puts), puts[-3:]
    env = {'AWS_ACCESS_KEY_ID': BROKER_KEY, 'AWS_SECRET_ACCESS_KEY': BROKER_SECRET,
           'AWS_ENDPOINT_URL_S3': b.emulator.url, 'AWS_REGION': 'ap-northeast-1',
           'AWS_EC2_METADATA_DISABLED': 'true'}
    r = b.cli('erin', 'audit', 'verify', b.audit_file, '--pubkey', _pub(b), '--head',
              's3://audit-anchor/elevate/heads/latest.json', env=env)
    assert r.returncode == 0 and 'not cut' in r.stdout, r.stdout + r.stderr
    r = b.cli('erin', 'audit', 'verify', b.audit_file, '--pubkey', _pub(b), '--head',
              's3://audit-anchor/elevate/heads/missing.json', env=env)
    assert r.returncode != 0 and 'NoSuchKey' in r.stderr, r.stdout + r.stderr
