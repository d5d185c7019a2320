"""`elevated keygen DIR`: the key set every node of one deployment shares (token.key signs
approval links, secret.key seals credentials and mail at rest). A broker whose state_dir
got the set signs its mail links with that very key, and a request approved through
such a link hands out credentials sealed and opened with the set's secret.key; the files
are 0600 and a second keygen never replaces them without --force."""
import base64
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from harness import BIN, mail_links, wait_mail

TOKEN_CONTEXT = b'elevate approval token v1\0'   # token.h: signed before the payload
SET = ('token.key', 'secret.key')


def tmpdir(ctx):
    d = tempfile.mkdtemp(prefix='elevate-keygen-')
    ctx._cleanup.append(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def keygen(*args):
    return subprocess.run([os.path.join(BIN, 'elevated'), 'keygen'] + list(args),
                          capture_output=True, text=True, timeout=30)


def read(d, name):
    with open(os.path.join(d, name), 'rb') as f:
        return f.read()


def token_public_key(d):
    """The Ed25519 public key of d/token.key (one line: base64 of the 32-byte seed)."""
    seed = base64.b64decode(read(d, 'token.key').strip(), validate=True)
    assert len(seed) == 32, len(seed)
    return Ed25519PrivateKey.from_private_bytes(seed).public_key()


def public_text(pub):
    return 'ed25519:' + base64.b64encode(pub.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def split_token(link):
    """(payload, signature) of the token at the end of an approval link."""
    tok = link.rsplit('/', 1)[1]
    raw = base64.urlsafe_b64decode(tok + '=' * (-len(tok) % 4))
    return raw[:-64], raw[-64:]


def signed_by(pub, payload, sig):
    try:
        pub.verify(sig, TOKEN_CONTEXT + payload)
        return True
    except InvalidSignature:
        return False


def payload_fields(payload):
    """token.h: 0x01 | len | request id | len | approver | expiry (8) | nonce (16)."""
    assert payload[0] == 1, payload[:1]
    n = payload[1]
    rid = payload[2:2 + n].decode()
    m = payload[2 + n]
    return rid, payload[3 + n:3 + n + m].decode()


def test_keygen_set_signs_the_links(ctx):
    """keygen, the set copied into a broker's state_dir, then: the approval link in the
    mail is signed by the set's token.key (and by no other deployment's), approving
    through it activates the grant, whose credentials - sealed with the set's secret.key
    - reach the requester; the broker kept the set as it was and made its own audit.key."""
    tmp = tmpdir(ctx)
    keys = os.path.join(tmp, 'set')
    r = keygen(keys)
    assert r.returncode == 0, r.stderr
    pub = token_public_key(keys)
    out = r.stdout
    assert 'wrote %s/token.key (mode 0600): signs approval links; public key %s\n' % (
        keys, public_text(pub)) in out, out
    assert 'wrote %s/secret.key (mode 0600): seals grant credentials' % keys in out, out
    assert re.search(r'next: copy both files into the state_dir of every node', out), out
    assert 'own audit.key' in out and 'warning' not in out, out
    assert sorted(os.listdir(keys)) == sorted(SET), os.listdir(keys)
    r = keygen(os.path.join(tmp, 'another-deployment'))
    assert r.returncode == 0, r.stderr
    stranger = token_public_key(os.path.join(tmp, 'another-deployment'))

    smtp = ctx.smtp(os.path.join(tmp, 'smtp')).start()
    b = ctx.broker(smtp_port=smtp.port)
    os.makedirs(b.state_dir, 0o700)
    for name in SET:   # as an operator does: copied, 0600, owned by whoever runs elevated
        shutil.copyfile(os.path.join(keys, name), os.path.join(b.state_dir, name))
        os.chmod(os.path.join(b.state_dir, name), 0o600)
    b.start()

    rid = b.request(reason='keygen test')['id']
    m = wait_mail(smtp, 1, pred=lambda m: m['rcpt'] == ['carol@example.com'])[0]
    text, html = mail_links(m['msg'])
    assert len(text) == 1 and html == text, (text, html)
    link = text[0]
    payload, sig = split_token(link)
    assert payload_fields(payload) == (rid, 'carol'), payload_fields(payload)
    assert signed_by(pub, payload, sig), 'the link is not signed by the set\'s token.key'
    assert not signed_by(stranger, payload, sig), 'a link verified under another set\'s key'

    req = urllib.request.Request(link, method='POST',
                                 data=urllib.parse.urlencode({'decision': 'approve'}).encode(),
                                 headers={'Content-Type': 'application/x-www-form-urlencoded'})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200, resp.status
        assert 'Approved' in resp.read().decode()
    deadline = time.time() + 15
    while b.get(rid)['state'] != 'active' and time.time() < deadline:
        time.sleep(0.05)
    r = b.get(rid)
    assert r['state'] == 'active', r
    assert [(a['approver'], a['decision']) for a in r['approvals']] == [('carol', 'approve')]
    appr = [e for e in b.audit(rid) if e['event'] == 'request.approval']
    assert [e['data'].get('via') for e in appr] == ['email'], appr
    creds = b.cli_json('alice', 'creds', rid)
    assert creds['Version'] == 1 and creds['AccessKeyId'].startswith('ASIA'), creds

    for name in SET:
        assert read(b.state_dir, name) == read(keys, name), '%s was changed' % name
        assert stat.S_IMODE(os.stat(os.path.join(b.state_dir, name)).st_mode) == 0o600
    assert os.path.exists(os.path.join(b.state_dir, 'audit.key'))
    assert sorted(os.listdir(keys)) == sorted(SET), 'audit.key is no part of the set'


def test_keygen_files_and_refusals(ctx):
    """The set is 0600 in a 0700 directory; a second keygen is refused, says why and how
    to override, and leaves both files as they were; --force replaces both; keygen takes
    exactly one directory."""
    tmp = tmpdir(ctx)
    keys = os.path.join(tmp, 'new', 'set')
    r = keygen(keys)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o700
    before = {}
    for name in SET:
        st = os.stat(os.path.join(keys, name))
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, (name, st)
        assert st.st_uid == os.geteuid()
        before[name] = read(keys, name)
    assert len(before['secret.key']) == 32

    r = keygen(keys)
    assert r.returncode == 1 and r.stdout == '', (r.returncode, r.stdout)
    assert r.stderr.startswith('elevated keygen: %s/token.key and %s/secret.key already exist'
                               % (keys, keys)), r.stderr
    assert 'nothing was written' in r.stderr and '--force' in r.stderr, r.stderr
    for name in SET:
        assert read(keys, name) == before[name], '%s changed without --force' % name
    assert sorted(os.listdir(keys)) == sorted(SET), os.listdir(keys)

    r = keygen('--force', keys)
    assert r.returncode == 0, r.stderr
    for name in SET:
        assert read(keys, name) != before[name], '%s not replaced by --force' % name
        assert stat.S_IMODE(os.stat(os.path.join(keys, name)).st_mode) == 0o600
    assert public_text(token_public_key(keys)) in r.stdout

    for args in ((), (keys, keys)):
        r = keygen(*args)
        assert r.returncode == 2 and 'elevated keygen [--force] DIR' in r.stderr, r
