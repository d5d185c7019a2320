"""The audit key and the store's own check (issue 10 parts 4 and 6): a missing audit.key
under an existing chain stops the broker; `elevated audit-rotate-key` hands over to a new
key inside the chain, so the first public key alone verifies across rotations and a forged
rotation fails; the store checks its chain at start (an UPDATE or DELETE made straight in
the database stops it, naming the seq) and `elevated check --audit` names the first bad
seq of the whole chain."""
import base64
import json
import os
import subprocess

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import audit_verifier as av
import harness


def elevated(b, *args):
    return subprocess.run([os.path.join(harness.BIN, 'elevated')] + list(args) +
                          ['--config', b.config_path], capture_output=True, text=True,
                          env=b.env(), timeout=60)


def start_fails(b, *words):
    """Starts b, which must exit on its own without ever answering, saying words."""
    b.start(wait=False)
    try:
        rc = b.proc.wait(30)
    except subprocess.TimeoutExpired:
        b.stop()
        raise AssertionError('elevated started although it should not')
    b.proc = None
    log = b.logtext()
    assert rc != 0, log[-2000:]
    for w in words:
        assert w in log, 'log does not say %r:\n%s' % (w, log[-2000:])
    return log


def pub_of(b):
    return open(os.path.join(b.state_dir, 'audit.pub')).read().strip()


def verify_both(b, pub, want_ok, path=None):
    path = path or b.audit_file
    r = b.cli('erin', 'audit', 'verify', path, '--pubkey', pub)
    with open(path, 'rb') as f:
        v = av.verify(f, pub)
    assert (r.returncode == 0) == want_ok, r.stdout + r.stderr
    assert v.ok == want_ok, v
    return r.stdout, v


def test_missing_key_refuses_start(ctx):
    b = ctx.broker().start()
    b.request()
    b.stop()
    key = os.path.join(b.state_dir, 'audit.key')
    saved = open(key, 'rb').read()
    os.unlink(key)
    log = start_fails(b, key + ' is missing', 'restore audit.key from a backup')
    assert ('elevate.db' if harness.STORE == 'sqlite' else 'the PostgreSQL database') in log
    assert not os.path.exists(key), 'a new audit.key was made under the old chain'
    with open(key, 'wb') as f:
        f.write(saved)
    os.chmod(key, 0o600)
    b.start()                                  # the restored key is the chain's: it starts
    b.request()
    b.stop()
    verify_both(b, pub_of(b), True)


def test_rotate_key_and_verify_with_first_key(ctx):
    b = ctx.broker(config={'audit': {'checkpoint_every': 4}})
    head = os.path.join(b.tmp, 'audit.head')
    b.config['audit']['head_file'] = head
    b.write_config()
    b.start()
    b.request()
    first = pub_of(b)
    r = elevated(b, 'audit-rotate-key')       # refused while the broker runs
    assert r.returncode != 0 and 'stop it first' in r.stderr, r.stdout + r.stderr
    b.stop()
    r = elevated(b, 'audit-rotate-key')
    assert r.returncode == 0, r.stdout + r.stderr
    second = pub_of(b)
    assert second != first and second in r.stdout, r.stdout
    assert open(os.path.join(b.state_dir, 'audit.pub.first')).read().strip() == first
    b.start()
    for _ in range(3):
        b.request()
    b.stop()
    r = elevated(b, 'audit-rotate-key')       # a second rotation
    assert r.returncode == 0, r.stderr
    third = pub_of(b)
    b.start()
    b.request()
    b.stop()
    assert os.stat(os.path.join(b.state_dir, 'audit.key')).st_mode & 0o077 == 0
    out, v = verify_both(b, first, True)
    assert '2 key rotations' in out and v.rotations == 2, out
    events = [json.loads(x)['event'] for x in open(b.audit_file)]
    assert events.count('audit.key_rotated') == 2
    # the current key alone does not verify what the first one signed
    verify_both(b, third, False)
    verify_both(b, second, False)
    r = elevated(b, 'check', '--audit')
    assert r.returncode == 0 and '2 key rotations' in r.stdout, r.stdout + r.stderr
    # the head the broker signed last (with the third key) verifies from the first key
    # alone, through both rotations, and proves the export whole
    r = b.cli('erin', 'audit', 'verify', b.audit_file, '--pubkey', first, '--head', head)
    assert r.returncode == 0 and 'not cut' in r.stdout, r.stdout + r.stderr
    with open(head) as f:
        h = json.load(f)
    with open(b.audit_file, 'rb') as f:
        assert av.verify(f, first, head=h).ok

    # a forged rotation: the attacker names their own key and signs with it
    lines = open(b.audit_file).read().splitlines()
    recs = [json.loads(x) for x in lines]
    i = next(k for k, x in enumerate(recs) if x['event'] == 'audit.key_rotated')
    mallory = Ed25519PrivateKey.generate()
    mk = av.pubkey_text(
        mallory.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    d = recs[i]['data']
    d['new_key'] = mk
    msg = 'elevate-audit-key-rotation\n%d\n%s\n%s\n%s' % (d['signed_seq'], d['signed_hash'], mk,
                                                          d['node'])
    d['sig'] = base64.b64encode(mallory.sign(msg.encode())).decode()
    for k in range(i, len(recs)):
        recs[k]['prev_hash'] = recs[k - 1]['hash']
        if k > i and recs[k]['event'] == 'audit.checkpoint':
            recs[k]['data']['signed_hash'] = recs[k]['prev_hash']
            m = 'elevate-audit-checkpoint\n%d\n%s\n%s' % (recs[k]['data']['signed_seq'],
                                                          recs[k]['prev_hash'],
                                                          recs[k]['data']['node'])
            recs[k]['data']['sig'] = base64.b64encode(mallory.sign(m.encode())).decode()
        recs[k]['hash'] = av.record_hash(recs[k]['prev_hash'], recs[k])
    path = os.path.join(b.tmp, 'forged-rotation.jsonl')
    with open(path, 'w') as f:
        f.write(''.join(av.canonical(x) + '\n' for x in recs))
    out, v = verify_both(b, first, False, path)
    assert 'key rotation not signed by the current key' in out and v.kind == 'rotation', out
    assert 'line %d ' % (i + 1) in out and v.line == i + 1, (out, v)


def test_interrupted_rotation_is_finished(ctx):
    """The rotation committed, the rename did not happen: the next start finishes it."""
    b = ctx.broker().start()
    b.request()
    b.stop()
    first = pub_of(b)
    key = os.path.join(b.state_dir, 'audit.key')
    old = open(key, 'rb').read()
    r = elevated(b, 'audit-rotate-key')
    assert r.returncode == 0, r.stderr
    # put the state back to "between commit and rename"
    os.rename(key, key + '.new')
    with open(key, 'wb') as f:
        f.write(old)
    os.chmod(key, 0o600)
    b.start()
    assert 'finished an interrupted audit key rotation' in b.logtext()
    b.request()
    b.stop()
    assert not os.path.exists(key + '.new')
    verify_both(b, first, True)


def test_database_edit_stops_start(ctx):
    b = ctx.broker(config={'audit': {'checkpoint_every': 1000}}).start()
    for _ in range(3):
        b.request()
    b.kill9()                                  # no checkpoint since the start: all unsigned
    seq, data = b.query("SELECT seq, data FROM audit WHERE event = 'request.created' "
                        "ORDER BY seq DESC LIMIT 1")[0]
    b.execute('UPDATE audit SET data = ? WHERE seq = ?',
              (data.replace('deploy fix', 'nothing to see'), seq))
    start_fails(b, 'does not verify', 'seq %d: hash mismatch' % seq)
    r = elevated(b, 'check', '--audit')
    assert r.returncode == 1 and 'audit chain BROKEN at seq %d' % seq in r.stderr, r.stderr
    b.execute('UPDATE audit SET data = ? WHERE seq = ?', (data, seq))
    b.start()                                  # put back as it was: it starts
    b.request()
    b.stop()
    r = elevated(b, 'check', '--audit')
    assert r.returncode == 0 and 'audit chain OK' in r.stdout, r.stdout + r.stderr

    # the record the last checkpoint signs, edited: the signature no longer covers it
    last = b.query("SELECT max(seq) FROM audit WHERE event = 'audit.checkpoint'")[0][0]
    b.execute("UPDATE audit SET actor = 'mallory' WHERE seq = ?", (last - 1,))
    start_fails(b, 'seq %d: hash mismatch' % (last - 1))
    b.execute("UPDATE audit SET actor = 'system' WHERE seq = ?", (last - 1,))
    b.start()
    b.request()
    b.kill9()

    # a record deleted after the last checkpoint
    top = b.query('SELECT max(seq) FROM audit')[0][0]
    row = b.query('SELECT seq, time, actor, event, request_id, data, prev_hash, hash'
                  ' FROM audit WHERE seq = ?', (top - 1,))[0]
    b.execute('DELETE FROM audit WHERE seq = ?', (top - 1,))
    start_fails(b, 'seq %d' % (top - 1), 'dropped or reordered')
    b.execute('INSERT INTO audit (seq, time, actor, event, request_id, data, prev_hash, hash)'
              ' VALUES (?,?,?,?,?,?,?,?)', row)
    # data that is no longer JSON
    b.execute("UPDATE audit SET data = '{broken' WHERE seq = ?", (top,))
    start_fails(b, 'seq %d' % top)
    r = elevated(b, 'check', '--audit')
    assert r.returncode == 1 and 'BROKEN at seq %d' % top in r.stderr, r.stderr


def test_check_audit_finds_old_edits(ctx):
    """An edit before the last checkpoint is outside the start-up check; `elevated check
    --audit` walks the whole chain and names it."""
    b = ctx.broker(config={'audit': {'checkpoint_every': 3}}).start()
    for _ in range(4):
        b.request()
    b.stop()
    seq = b.query("SELECT min(seq) FROM audit WHERE event = 'request.created'")[0][0]
    b.execute("UPDATE audit SET actor = 'mallory' WHERE seq = ?", (seq,))
    r = elevated(b, 'check', '--audit')
    assert r.returncode == 1, r.stdout
    assert 'audit chain BROKEN at seq %d: seq %d: hash mismatch' % (seq, seq) in r.stderr, \
        r.stderr
