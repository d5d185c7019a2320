"""Mails to the requester around a grant's life: ending soon (once), ended."""
import os
import time

from harness import parse_iso, wait_mail, mail_parts


def test_ending_soon_then_ended(ctx):
    b = ctx.broker(config={'mail': {'ending_soon': '3s'}})
    smtp = ctx.smtp(b.tmp).start()
    b.config['smtp'] = {'url': 'smtp://127.0.0.1:%d' % smtp.port, 'from': 'elevate@example.com'}
    b.write_config()
    b.start()
    j = b.request(profile='dev', duration='6s', ticket=None)
    d = b.approve_until(j['id'])
    end = parse_iso(d['window_end'])
    soon = wait_mail(smtp, 1, 15, pred=lambda m: m['rcpt'] == ['alice@example.com'] and
                     'ending' in str(m['msg']['Subject']).lower())[0]
    text = mail_parts(soon['msg'])['text/plain']
    assert d['id'] in text, text
    ended = wait_mail(smtp, 1, 15, pred=lambda m: m['rcpt'] == ['alice@example.com'] and
                      'ended' in str(m['msg']['Subject']).lower())
    assert ended
    time.sleep(1)
    soons = [m for m in smtp.messages() if m['rcpt'] == ['alice@example.com'] and
             'ending' in str(m['msg']['Subject']).lower()]
    assert len(soons) == 1, len(soons)          # warned once, not at every sweep
    assert time.time() >= end


def _outbox(b):
    return b.query('SELECT rcpt, state, attempts, last_error FROM outbox')


def test_smtp_auth_with_password_file(ctx):
    from harness import wait_for
    b = ctx.broker()
    smtp = ctx.smtp(b.tmp, auth='elevate:pa55word').start()
    pw = os.path.join(b.tmp, 'smtp.pw')
    with open(pw, 'w') as f:
        f.write('wrong\n')
    os.chmod(pw, 0o600)
    b.config['smtp'] = {'url': 'smtp://127.0.0.1:%d' % smtp.port, 'from': 'elevate@example.com',
                        'username': 'elevate', 'password_file': pw}
    b.write_config()
    b.start()
    b.request()
    # a wrong password: refused, kept queued with the reason, nothing delivered
    wait_for(lambda: all(r[2] >= 1 and r[3] for r in _outbox(b)) and _outbox(b), 10,
             what='a refused attempt')
    assert all(r[1] == 'queued' for r in _outbox(b)), _outbox(b)
    assert smtp.messages() == []
    assert 'pa55word' not in b.logtext() and 'wrong' not in b.logtext()
    with open(pw, 'w') as f:
        f.write('pa55word\n')
    msgs = wait_mail(smtp, 2, 20)
    assert sorted(m['rcpt'][0] for m in msgs) == ['carol@example.com', 'dave@example.com']
    wait_for(lambda: all(r[1] == 'sent' for r in _outbox(b)), 10, what='outbox sent')


def test_require_starttls_refuses_plain_server(ctx):
    from harness import wait_for
    b = ctx.broker()
    smtp = ctx.smtp(b.tmp).start()
    b.config['smtp'] = {'url': 'smtp://127.0.0.1:%d' % smtp.port, 'from': 'elevate@example.com',
                        'require_starttls': True}
    b.write_config()
    b.start()
    b.request()
    wait_for(lambda: _outbox(b) and all(r[2] >= 1 and r[3] for r in _outbox(b)), 10,
             what='a refused attempt')
    time.sleep(0.5)
    assert smtp.messages() == [], 'sent without STARTTLS'
    assert all(r[1] == 'queued' for r in _outbox(b))
    assert any('TLS' in (r[3] or '') or 'tls' in (r[3] or '').lower() for r in _outbox(b)), \
        _outbox(b)
