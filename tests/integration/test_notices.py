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
    st, d = b.approve(j['id'])
    assert d['state'] == 'active', d
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
