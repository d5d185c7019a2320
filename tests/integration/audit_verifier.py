"""An independent verifier of elevate's audit exports, written from docs/audit.md alone
(no code shared with src/core/audit*.c): the canonical form (section 2), the hash rule
(section 3), checkpoints, key rotations, nodes and their keys, and the unsigned tail
(section 4). Ed25519 from the `cryptography` package, BLAKE2b from hashlib.

    python3 audit_verifier.py FILE [--pubkey ed25519:KEY]... [--partial] [--allow-unsigned-tail]

prints "audit OK: ..." or "audit FAILED: KIND: ..." and exits 0 or 1. verify() returns a
Verdict whose `kind` names the problem (None when intact): parse, start, seq, link, hash,
checkpoint, rotation, join, no_signature, unsigned_tail."""
import re
import base64
import binascii
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HASHED = ('actor', 'data', 'event', 'request_id', 'seq', 'time')
MEMBERS = set(HASHED) | {'prev_hash', 'hash'}
ZERO = '0' * 64
MAX_LINE = 64 * 1024 + 1024   # a record's canonical form is at most 64 KiB
INT64 = (-(1 << 63), (1 << 63) - 1)


class Bad(Exception):
    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind


class Verdict:
    def __init__(self):
        self.ok = False
        self.kind = None
        self.problem = ''
        self.line = 0
        self.seq = None
        self.records = 0
        self.first_seq = self.last_seq = 0
        self.checkpoints = self.rotations = 0
        self.last_signed_seq = 0
        self.unsigned_tail = 0
        self.nodes = {}          # name ('' for signatures naming none) -> Node

    def __repr__(self):
        return 'Verdict(ok=%r, kind=%r, line=%r, problem=%r)' % (
            self.ok, self.kind, self.line, self.problem)


# ---- section 2: the canonical form ----

ESCAPES = {'"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r',
           '\t': '\\t'}


def _esc(s):
    out = ['"']
    for ch in s:
        if ch in ESCAPES:
            out.append(ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append('\\u%04X' % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return ''.join(out)


def _real(x):
    s = '%.17g' % x
    if 'e' in s:
        mant, exp = s.split('e')
        sign = '-' if exp.startswith('-') else ''
        s = mant + 'e' + sign + (exp.lstrip('+-').lstrip('0') or '0')
    if '.' not in s and 'e' not in s:
        s += '.0'
    return s


def canonical(v):
    """The canonical JSON text of v (str)."""
    if v is None:
        return 'null'
    if v is True:
        return 'true'
    if v is False:
        return 'false'
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _real(v)
    if isinstance(v, str):
        return _esc(v)
    if isinstance(v, list):
        return '[' + ','.join(canonical(x) for x in v) + ']'
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode('utf-8'))
        return '{' + ','.join(_esc(k) + ':' + canonical(v[k]) for k in keys) + '}'
    raise TypeError(type(v))


def _pairs(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError('duplicate key %r' % k)
        seen[k] = v
    return seen


def _constant(name):
    raise ValueError('%s is not JSON' % name)


def _check_values(v):
    if isinstance(v, str) and '\x00' in v:
        raise ValueError('a string holds U+0000')
    if isinstance(v, int) and not isinstance(v, bool) and not INT64[0] <= v <= INT64[1]:
        raise ValueError('integer out of range')
    if isinstance(v, list):
        for x in v:
            _check_values(x)
    if isinstance(v, dict):
        for k, x in v.items():
            _check_values(k)
            _check_values(x)


def parse_record(line):
    try:
        j = json.loads(line, object_pairs_hook=_pairs, parse_constant=_constant)
        _check_values(j)
    except (ValueError, UnicodeDecodeError) as e:
        raise Bad('parse', 'not JSON: %s' % e)
    if not isinstance(j, dict) or set(j) != MEMBERS:
        raise Bad('parse', 'not an audit record: members %s' % sorted(j) if
                  isinstance(j, dict) else 'not an audit record')
    if (not isinstance(j['seq'], int) or isinstance(j['seq'], bool) or j['seq'] < 1 or
            j['seq'] >= INT64[1] or not isinstance(j['time'], str) or
            not isinstance(j['actor'], str) or not isinstance(j['event'], str) or
            not (j['request_id'] is None or isinstance(j['request_id'], str)) or
            not isinstance(j['data'], dict)):
        raise Bad('parse', 'not an audit record: a member has the wrong type')
    for k in ('prev_hash', 'hash'):
        h = j[k]
        if not isinstance(h, str) or len(h) != 64:
            raise Bad('parse', 'not an audit record: bad %s' % k)
        try:
            if len(bytes.fromhex(h)) != 32:
                raise ValueError(h)
        except ValueError:
            raise Bad('parse', 'not an audit record: bad %s' % k)
    if len(j['time'].encode('utf-8')) >= 32:
        raise Bad('parse', 'not an audit record: bad time')
    return j


# ---- section 3: the hash rule ----

def record_hash(prev_hex, rec):
    c = canonical({k: rec[k] for k in HASHED}).encode('utf-8')
    return hashlib.blake2b(bytes.fromhex(prev_hex) + c, digest_size=32).hexdigest()


# ---- section 4: signatures ----

def parse_pubkey(text):
    text = text.strip()
    if not text.startswith('ed25519:'):
        raise ValueError('not an ed25519: key')
    raw = base64.b64decode(text[8:], validate=True)
    if len(raw) != 32 or pubkey_text(raw) != text:
        raise ValueError('not a 32-byte key in standard base64')
    return raw


def pubkey_text(raw):
    """The one spelling of a 32-byte public key: ed25519:BASE64."""
    return 'ed25519:' + base64.b64encode(raw).decode()


def _sig_ok(pk, sig_b64, msg):
    try:
        sig = base64.b64decode(sig_b64, validate=True)
        if len(sig) != 64:
            return False
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg.encode('ascii'))
        return True
    except (InvalidSignature, ValueError, binascii.Error, TypeError, UnicodeEncodeError):
        return False


NODE_NAME = re.compile(r'[A-Za-z0-9._-]{1,64}\Z')


def _signs_head(rec):
    d = rec['data']
    n, h = d.get('signed_seq'), d.get('signed_hash')
    return (isinstance(n, int) and not isinstance(n, bool) and n == rec['seq'] - 1 and
            isinstance(h, str) and h.lower() == rec['prev_hash'].lower() and len(h) == 64
            and all(c in '0123456789abcdefABCDEF' for c in h))


def node_of(rec):
    """The node a signature or join names: '' when its data has no "node" (signed before
    nodes), None when "node" is not a node's name."""
    d = rec['data']
    if 'node' not in d:
        return ''
    n = d['node']
    return n if isinstance(n, str) and NODE_NAME.match(n) else None


def _with_node(msg, node):
    return msg + '\n' + node if node else msg


def checkpoint_ok(pk, rec):
    d = rec['data']
    node = node_of(rec)
    if node is None or not _signs_head(rec) or not isinstance(d.get('sig'), str):
        return False
    return _sig_ok(pk, d['sig'], _with_node('elevate-audit-checkpoint\n%d\n%s' % (
        d['signed_seq'], d['signed_hash']), node))


def rotation_next_key(pk, rec):
    """The key a valid rotation hands over to, or None."""
    d = rec['data']
    nk = d.get('new_key')
    node = node_of(rec)
    if (node is None or not _signs_head(rec) or not isinstance(d.get('sig'), str) or
            not isinstance(nk, str)):
        return None
    try:
        nxt = parse_pubkey(nk)
    except (ValueError, binascii.Error):
        return None
    if not _sig_ok(pk, d['sig'], _with_node('elevate-audit-key-rotation\n%d\n%s\n%s' % (
            d['signed_seq'], d['signed_hash'], nk), node)):
        return None
    return nxt


def join_of(rec):
    """(node, key) of a well-formed audit.node_joined, else None."""
    node = node_of(rec)
    k = rec['data'].get('public_key')
    if not node or not isinstance(k, str):
        return None
    try:
        return node, parse_pubkey(k)
    except (ValueError, binascii.Error):
        return None


class Node:
    def __init__(self, name):
        self.name = name
        self.key = None          # bound: its current key
        self.given = None        # the index of the given key it bound to
        self.merged = False      # '' only: a named node took its key over
        self.joined = 0          # seq of its audit.node_joined
        self.announced = None
        self.first_signed = 0
        self.checkpoints = self.rotations = 0


class Keys:
    """Section 4, "Nodes and their keys": each node's first signature binds it."""

    def __init__(self, given):
        self.given = given               # [raw key]
        self.owner = [None] * len(given)  # node name each given key is bound to
        self.nodes = {}

    def node(self, name):
        if name not in self.nodes:
            if len(self.nodes) >= 64:
                raise Bad('checkpoint', 'more than 64 nodes sign this chain')
            self.nodes[name] = Node(name)
        return self.nodes[name]

    def signer(self, rec, rotation):
        """The node that signed rec; for a rotation also the key it hands over to."""
        kind = 'rotation' if rotation else 'checkpoint'
        name = node_of(rec)
        if name is None:
            raise Bad(kind, '%s names no valid node' % kind)
        n = self.node(name)

        def signs(pk):
            return rotation_next_key(pk, rec) if rotation else checkpoint_ok(pk, rec)

        if n.key is not None:
            nxt = signs(n.key)
            if not nxt:
                raise Bad(kind, '%s of node %r not signed by its current key' % (kind, name))
            return n, nxt
        old = self.nodes.get('')
        nxt = None
        if name and old is not None and old.key is not None and not old.merged:
            nxt = signs(old.key)
            if nxt:
                n.key, n.given, old.merged = old.key, old.given, True
                if n.given is not None:
                    self.owner[n.given] = name
        if not nxt:
            for g, pk in enumerate(self.given):
                if self.owner[g] is None:
                    nxt = signs(pk)
                    if nxt:
                        n.key, n.given, self.owner[g] = pk, g, name
                        break
        if not nxt:
            raise Bad(kind, '%s of node %r: no given key verifies it' % (kind, name))
        self.free(n, n.key, kind)
        return n, nxt

    def free(self, n, key, kind):
        """A key belongs to one node."""
        for m in self.nodes.values():
            if m is not n and m.key == key and not m.merged:
                raise Bad(kind, 'node %r takes the key of node %r' % (n.name, m.name))

    def join(self, rec):
        j = join_of(rec)
        if j is None:
            raise Bad('join', 'audit.node_joined names no valid node or key')
        n = self.node(j[0])
        if n.joined or n.first_signed:
            raise Bad('join', 'node %r joins again' % j[0])
        n.joined, n.announced = rec['seq'], j[1]


# ---- the walk ----

def head_ok(pk, head):
    """A signed head (docs/audit.md section 4): {seq, hash, time, sig} under key pk."""
    if not (isinstance(head, dict) and set(head) == {'seq', 'hash', 'time', 'sig'} and
            isinstance(head['seq'], int) and not isinstance(head['seq'], bool) and
            head['seq'] >= 1 and isinstance(head['hash'], str) and len(head['hash']) == 64
            and all(c in '0123456789abcdef' for c in head['hash']) and
            isinstance(head['time'], str) and isinstance(head['sig'], str)):
        return False
    return _sig_ok(pk, head['sig'], 'elevate-audit-head\n%d\n%s\n%s' % (
        head['seq'], head['hash'], head['time']))


def verify(lines, pubkey=None, partial=False, allow_unsigned_tail=False, head=None):
    """lines: an iterable of bytes or str lines. pubkey: 'ed25519:...' (a first key), or a
    list of them (each node's first key). head: a signed head (a dict), checked with the
    keys the nodes end the chain with: the export must reach its seq and hold its hash
    there."""
    v = Verdict()
    hashes = {}
    given = [pubkey] if isinstance(pubkey, str) else list(pubkey or [])
    keys = Keys(list(dict.fromkeys(parse_pubkey(k) for k in given))) if given else None
    key = keys
    prev = None
    expect = None
    last_is_checkpoint = False
    lineno = 0
    try:
        for raw in lines:
            lineno += 1
            if isinstance(raw, bytes):
                try:
                    raw = raw.decode('utf-8')
                except UnicodeDecodeError as e:
                    v.line = lineno
                    raise Bad('parse', 'not UTF-8: %s' % e)
            if raw.strip('\n') == '':
                continue
            v.line = lineno
            if len(raw.encode('utf-8')) > MAX_LINE:
                raise Bad('parse', 'longer than %d bytes' % MAX_LINE)
            rec = parse_record(raw)
            seq = rec['seq']
            v.seq = seq
            if v.records == 0:
                v.first_seq = seq
                if not partial and (seq != 1 or rec['prev_hash'] != ZERO):
                    raise Bad('start', 'chain does not start at seq 1 (starts at %d)' % seq)
                prev = rec['prev_hash'].lower()
                expect = seq
            if seq != expect:
                raise Bad('seq', 'seq %d where seq %d was expected' % (seq, expect))
            if rec['prev_hash'].lower() != prev:
                raise Bad('link', 'prev_hash does not match the previous record')
            if record_hash(prev, rec) != rec['hash'].lower():
                raise Bad('hash', 'hash mismatch: the record was edited')
            last_is_checkpoint = False
            if key is not None and rec['event'] == 'audit.checkpoint':
                n, _ = keys.signer(rec, False)
                n.checkpoints += 1
                n.first_signed = n.first_signed or seq
                v.checkpoints += 1
                v.last_signed_seq = rec['data']['signed_seq']
                last_is_checkpoint = True
            elif key is not None and rec['event'] == 'audit.key_rotated':
                n, nxt = keys.signer(rec, True)
                keys.free(n, nxt, 'rotation')
                n.key = nxt
                n.rotations += 1
                n.first_signed = n.first_signed or seq
                v.rotations += 1
                v.last_signed_seq = rec['data']['signed_seq']
            elif key is not None and rec['event'] == 'audit.node_joined':
                keys.join(rec)
            prev = rec['hash'].lower()
            if head is not None:
                hashes[seq] = prev
            expect = seq + 1
            v.records += 1
            v.last_seq = seq
        if v.records == 0:
            raise Bad('parse', 'no audit records')
        if key is not None:
            if v.last_signed_seq == 0:
                raise Bad('no_signature', 'no signed checkpoint covers these records')
            v.unsigned_tail = 0 if last_is_checkpoint else v.last_seq - v.last_signed_seq - 1
            v.nodes = keys.nodes
            if head is not None:
                v.line = 0
                if not any(n.key is not None and head_ok(n.key, head)
                           for n in keys.nodes.values()):
                    raise Bad('head', 'the head is not signed by the chain\'s current key')
                if v.last_seq < head['seq']:
                    raise Bad('cut', 'the export ends at seq %d but the head is at seq %d: '
                              'records were cut' % (v.last_seq, head['seq']))
                if hashes.get(head['seq']) != head['hash']:
                    raise Bad('cut', 'the record at seq %d is not the one the head signs'
                              % head['seq'])
            if v.unsigned_tail > 0 and not allow_unsigned_tail:
                raise Bad('unsigned_tail', '%d records after seq %d are not covered by a '
                          'signed checkpoint' % (v.unsigned_tail, v.last_signed_seq + 1))
    except Bad as b:
        v.kind = b.kind
        v.problem = str(b)
        return v
    v.ok = True
    v.line = 0
    return v


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('file')
    ap.add_argument('--pubkey', action='append')
    ap.add_argument('--partial', action='store_true')
    ap.add_argument('--allow-unsigned-tail', action='store_true')
    ap.add_argument('--head', help='a signed head file (audit.head_file)')
    a = ap.parse_args(argv)
    head = None
    if a.head:
        if not a.pubkey:
            ap.error('--head needs --pubkey')
        with open(a.head) as f:
            head = json.load(f)
    with open(a.file, 'rb') as f:
        v = verify(f, a.pubkey, a.partial, a.allow_unsigned_tail, head)
    if v.ok:
        print('audit OK: %d records (seq %d..%d), %d checkpoints, %d key rotations, signed '
              'through seq %d' % (v.records, v.first_seq, v.last_seq, v.checkpoints,
                                  v.rotations, v.last_signed_seq))
        return 0
    print('audit FAILED: %s: line %d: %s' % (v.kind, v.line, v.problem))
    return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
