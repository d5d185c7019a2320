"""The tamper matrix: a real export from a real broker run, tampered with as an attacker on
the broker host would (edit, delete, swap, truncate, append, forge a checkpoint, splice two
exports, recompute the hashes of a tail, re-sign with another key), must fail both
`elevate audit verify` and the independent Python verifier (audit_verifier.py, written from
docs/audit.md), each with the right problem on the same line; the untouched export passes
both."""
import base64
import json
import os
import re
import subprocess

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import audit_verifier as av
import harness

# What `elevate audit verify` says for each kind of problem the Python verifier names.
C_WORDS = {
    'hash': 'hash mismatch: the record was edited',
    'link': 'prev_hash does not match the previous record',
    'seq': 'was expected: records dropped or reordered',
    'start': 'chain does not start at seq 1',
    'checkpoint': 'checkpoint signature does not verify',
    'rotation': 'key rotation not signed by the current key',
    'unsigned_tail': 'not covered by a signed checkpoint',
    'cut': re.compile(r'were cut|is not the one the broker signed'),
    'head': 'signature does not verify',
    'no_signature': 'no signed checkpoint covers',
    'parse': re.compile(r'not JSON|not an audit record|longer than'),
}


def line_of(rec):
    return av.canonical(rec)


def rehash(recs, start):
    """Recomputes prev_hash and hash from index start on, as an attacker can."""
    for i in range(start, len(recs)):
        recs[i]['prev_hash'] = recs[i - 1]['hash'] if i > 0 else av.ZERO
        recs[i]['hash'] = av.record_hash(recs[i]['prev_hash'], recs[i])
    return recs


def sign_checkpoint(rec, sk):
    d = rec['data']
    msg = 'elevate-audit-checkpoint\n%d\n%s' % (d['signed_seq'], d['signed_hash'])
    if 'node' in d:                           # the node that signs is under the signature
        msg += '\n' + d['node']
    d['sig'] = base64.b64encode(sk.sign(msg.encode())).decode()


def c_verify(b, path, pub, *extra):
    r = b.cli('erin', '--json', 'audit', 'verify', path, '--pubkey', pub, *extra)
    try:
        j = json.loads(r.stdout)
    except ValueError:
        raise AssertionError('elevate audit verify --json: %r %r' % (r.stdout, r.stderr))
    return r.returncode, j


def both(b, tmp, name, lines, pub, want, extra=()):
    """Writes lines to a file; both verifiers must agree: want None (intact) or a kind."""
    path = os.path.join(tmp, name + '.jsonl')
    with open(path, 'w') as f:
        f.write(''.join(x if x.endswith('\n') else x + '\n' for x in lines))
    rc, j = c_verify(b, path, pub, *extra)
    head = None
    if '--head' in extra:
        with open(extra[list(extra).index('--head') + 1]) as f:
            head = json.load(f)
    with open(path, 'rb') as f:
        v = av.verify(f, pub, partial='--partial' in extra,
                      allow_unsigned_tail='--allow-unsigned-tail' in extra, head=head)
    if want is None:
        assert rc == 0 and j['ok'], (name, j)
        assert v.ok, (name, v)
        return j, v
    assert rc == 1 and not j['ok'], ('%s: elevate audit verify did not notice: %s' % (name, j))
    assert not v.ok and v.kind == want, ('%s: python verifier: %r, want %s' % (name, v, want))
    words = C_WORDS[want]
    said = j['problem']
    assert (words.search(said) if hasattr(words, 'search') else words in said), (
        '%s: elevate audit verify said %r, want %r' % (name, said, words))
    if want not in ('unsigned_tail', 'no_signature', 'cut', 'head'):
        assert j['bad_line'] == v.line, ('%s: C says line %s, python line %s (%s / %s)' % (
            name, j['bad_line'], v.line, said, v.problem))
    return j, v


def run_broker(ctx, n=4):
    """A real broker run: requests created, approved, denied, revoked; checkpoints every 5
    records; stopped cleanly (the export ends with a checkpoint)."""
    b = ctx.broker(config={'audit': {'checkpoint_every': 5}})
    b.config['audit']['head_file'] = os.path.join(b.tmp, 'audit.head')
    b.write_config()
    b.start()
    ids = []
    for i in range(n):
        j = b.request(reason='tamper matrix %d: caf\u00e9 "quoted" \\ tab\t' % i)
        ids.append(j['id'])
    b.approve(ids[0])
    st, _ = b.api('carol', 'POST', '/v1/requests/%s/deny' % ids[1], {'comment': 'no/never'})
    assert st == 200, st
    harness.wait_for(lambda: b.get(ids[0])['state'] == 'active', 15, what='grant active')
    r = b.cli('alice', 'revoke', ids[0], '--reason', 'done')
    assert r.returncode == 0, r.stderr
    harness.wait_for(lambda: b.get(ids[0])['state'] == 'ended', 15, what='grant ended')
    b.stop()
    pub = open(os.path.join(b.state_dir, 'audit.pub')).read().strip()
    lines = [x for x in open(b.audit_file).read().splitlines() if x]
    return b, pub, lines


def head_supported(b):
    r = b.cli('erin', 'audit', 'verify', '--help')
    return '--head' in r.stdout


def test_tamper_matrix(ctx):
    b, pub, lines = run_broker(ctx)
    tmp = b.tmp
    recs = [json.loads(x) for x in lines]
    n = len(recs)
    ck = [i for i, r in enumerate(recs) if r['event'] == 'audit.checkpoint']
    assert n >= 14 and len(ck) >= 3 and ck[-1] == n - 1, (n, ck)
    # the broker's lines are the canonical form of docs/audit.md, byte for byte
    assert [line_of(r) for r in recs] == lines

    j, v = both(b, tmp, 'intact', lines, pub, None)
    assert j['records'] == v.records == n

    def mut(fn):
        rs = [json.loads(x) for x in lines]
        fn(rs)
        return rs

    mid = ck[1] - 2                          # a record some checkpoints cover
    assert recs[mid]['event'] != 'audit.checkpoint'

    # edit a field, hashes left alone
    for field, value in (('actor', 'mallory'), ('time', '2020-01-01T00:00:00.000Z'),
                         ('event', 'request.forged'), ('request_id', 'r-forged'),
                         ('data', {'reason': 'nothing to see'})):
        rs = mut(lambda rs: rs[mid].__setitem__(field, value))
        both(b, tmp, 'edit-' + field, [line_of(r) for r in rs], pub, 'hash')
    # edit a field inside data, the record's hash recomputed: the next link breaks
    rs = mut(lambda rs: rs[mid]['data'].__setitem__('comment', 'x'))
    rs[mid]['hash'] = av.record_hash(rs[mid]['prev_hash'], rs[mid])
    both(b, tmp, 'edit-rehash-one', [line_of(r) for r in rs], pub, 'link')
    # edit, then recompute every hash after it: the next checkpoint's signature fails
    rs = rehash(mut(lambda rs: rs[mid].__setitem__('actor', 'mallory')), mid)
    both(b, tmp, 'edit-rehash-all', [line_of(r) for r in rs], pub, 'checkpoint')
    # delete a record; delete and renumber with recomputed hashes
    both(b, tmp, 'delete', lines[:mid] + lines[mid + 1:], pub, 'seq')
    rs = mut(lambda rs: rs.pop(mid))
    for i in range(mid, len(rs)):
        rs[i]['seq'] -= 1
    both(b, tmp, 'delete-renumber', [line_of(r) for r in rehash(rs, mid)], pub, 'checkpoint')
    # swap two
    sw = list(lines)
    sw[mid], sw[mid + 1] = sw[mid + 1], sw[mid]
    both(b, tmp, 'swap', sw, pub, 'seq')
    # truncate: the head, in the middle of the unsigned part, mid-line
    both(b, tmp, 'cut-head', lines[3:], pub, 'start')
    both(b, tmp, 'cut-tail', lines[:ck[-1]], pub, 'unsigned_tail')
    both(b, tmp, 'cut-midline', lines[:mid] + [lines[mid][:len(lines[mid]) // 2]], pub,
         'parse')
    # a forged record appended, chained correctly: an unsigned tail
    rs = mut(lambda rs: rs.append(dict(rs[-1], seq=n + 1, actor='mallory',
                                       event='request.cancelled', data={}, request_id=None)))
    both(b, tmp, 'append', [line_of(r) for r in rehash(rs, n)], pub, 'unsigned_tail')
    # ... which --allow-unsigned-tail accepts, and says so: nothing keyed covers it
    j, v = both(b, tmp, 'append-allowed', [line_of(r) for r in rs], pub, None,
                extra=('--allow-unsigned-tail',))
    assert v.unsigned_tail == 1
    # a forged checkpoint (another key) appended after the forged record
    mallory = Ed25519PrivateKey.generate()
    fake = dict(rs[-1], seq=n + 2, event='audit.checkpoint', actor='system', request_id=None,
                data={'signed_seq': n + 1, 'signed_hash': rs[-1]['hash'], 'sig': ''})
    sign_checkpoint(fake, mallory)
    rs.append(fake)
    both(b, tmp, 'forge-checkpoint', [line_of(r) for r in rehash(rs, n)], pub, 'checkpoint')
    # a real checkpoint's signature replaced, hashes recomputed
    rs = mut(lambda rs: sign_checkpoint(rs[ck[1]], mallory))
    both(b, tmp, 'forge-checkpoint-mid', [line_of(r) for r in rehash(rs, ck[1])], pub,
         'checkpoint')
    # the whole chain rewritten and re-signed with another key
    rs = mut(lambda rs: rs[mid].__setitem__('actor', 'mallory'))
    for i, r in enumerate(rs):
        r['prev_hash'] = rs[i - 1]['hash'] if i > 0 else av.ZERO
        if r['event'] == 'audit.checkpoint':
            r['data']['signed_hash'] = r['prev_hash']
            sign_checkpoint(r, mallory)
        r['hash'] = av.record_hash(r['prev_hash'], r)
    both(b, tmp, 'resigned', [line_of(r) for r in rs], pub, 'checkpoint')
    mallory_pub = av.pubkey_text(
        mallory.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    both(b, tmp, 'resigned-own-key', [line_of(r) for r in rs], mallory_pub, None)

    # recompute the hashes of a tail: records after the last checkpoint edited
    tail = lines[:ck[-1]]                    # the export as a running broker leaves it
    rs = [json.loads(x) for x in tail]
    assert len(rs) - 1 > ck[-2]
    rs[-1]['actor'] = 'mallory'
    rs[-1]['data'] = {'note': 'rewritten'}
    rehash(rs, ck[-2] + 1)
    both(b, tmp, 'tail-rehashed', [line_of(r) for r in rs], pub, 'unsigned_tail')

    # splice two exports: another broker's run, its second half after ours
    b2, pub2, lines2 = run_broker(ctx)
    k = min(ck[1] + 1, len(lines2) - 1)
    both(b, tmp, 'splice', lines[:k] + lines2[k:], pub, 'link')
    rs = [json.loads(x) for x in lines[:k] + lines2[k:]]
    both(b, tmp, 'splice-rehashed', [line_of(r) for r in rehash(rs, k)], pub, 'checkpoint')
    both(b, tmp, 'other-key', lines, pub2, 'checkpoint')


def test_cut_after_checkpoint(ctx):
    """An export cut right after a checkpoint is a well-formed, signed chain: only the
    signed head the broker published (audit.head_file; syslog or S3 in production, out of
    the broker's reach) shows the cut. Both verifiers, from the same head."""
    b, pub, lines = run_broker(ctx)
    head = os.path.join(b.tmp, 'audit.head')
    recs = [json.loads(x) for x in lines]
    ck = [i for i, r in enumerate(recs) if r['event'] == 'audit.checkpoint']
    with open(head) as f:
        h = json.load(f)
    # the broker stopped cleanly: its last head names its last record, the checkpoint
    assert h['seq'] == recs[-1]['seq'] and h['hash'] == recs[-1]['hash'], (h, recs[-1])
    # without the head, a cut after a checkpoint is a whole signed chain to both ...
    cut = lines[:ck[-2] + 1]
    both(b, b.tmp, 'cut-no-head', cut, pub, None)
    # ... with it, both see the cut
    both(b, b.tmp, 'cut-after-checkpoint', cut, pub, 'cut', ('--head', head))
    both(b, b.tmp, 'whole-with-head', lines, pub, None, ('--head', head))
    # a head whose signature is not the chain's key's
    forged = dict(h, seq=h['seq'] - 1)
    fh = os.path.join(b.tmp, 'forged.head')
    with open(fh, 'w') as f:
        json.dump(forged, f)
    both(b, b.tmp, 'forged-head', lines, pub, 'head', ('--head', fh))
    # the last record rewritten (and rehashed, and re-linked): the head's hash differs
    rs = [json.loads(x) for x in lines]
    rs[-2]['data'] = {'note': 'rewritten'}
    both(b, b.tmp, 'rewritten-under-head', [line_of(r) for r in rehash(rs, len(rs) - 2)],
         pub, 'checkpoint', ('--head', head))


def test_verifier_agrees_on_canonical_edge_cases(ctx):
    """Strings the canonical form must escape exactly (docs/audit.md section 2): the Python
    verifier and the broker agree on each record the broker hashed."""
    b = ctx.broker().start()
    reasons = ['quote " back \\ slash /', 'caf\u00e9 \u00ff \u4e2d\u6587',
               'emoji \U0001F600', '{"json": [1, 2]} <b>&amp;</b>']
    for r in reasons:
        b.request(reason=r)
    b.stop()
    pub = open(os.path.join(b.state_dir, 'audit.pub')).read().strip()
    lines = open(b.audit_file).read().splitlines()
    got = [json.loads(x)['data'].get('reason') for x in lines]
    for r in reasons:
        assert r in got, (r, got)
    for x in lines:
        assert av.canonical(json.loads(x)) == x, x
    both(b, b.tmp, 'edge', lines, pub, None)
    # what jansson 2.14 writes for characters a reason may not hold (docs/audit.md 2)
    assert av.canonical({'s': 'a\x01\x1f"\\/\x7f\u2028\u00e9\b\f\n\r\t', 'r': 0.1,
                         'Z': 1, '\u00e9': 1, 'a_': [True, None, -5]}) == (
        '{"Z":1,"a_":[true,null,-5],"r":0.10000000000000001,'
        '"s":"a\\u0001\\u001F\\"\\\\/\x7f\u2028\u00e9\\b\\f\\n\\r\\t","\u00e9":1}')
    r = subprocess.run(['python3', os.path.join(os.path.dirname(__file__), 'audit_verifier.py'),
                        b.audit_file, '--pubkey', pub], capture_output=True, text=True)
    assert r.returncode == 0 and 'audit OK' in r.stdout, r.stdout + r.stderr
