"""A loopback SMTP server for the tests (Debian's python3-aiosmtpd): each message is saved
as N.eml with N.json holding the envelope."""
import asyncio
import json
import os
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, outdir):
        self.outdir = outdir
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(self.outdir, '%06d-%d' % (self.n, int(time.time() * 1000)))
        # The envelope first, then the message under its final name in one rename: a
        # reader that lists *.eml never finds one without its .json, or half written.
        with open(base + '.json', 'w') as f:
            json.dump({'from': envelope.mail_from, 'rcpt': envelope.rcpt_tos}, f)
        with open(base + '.eml.tmp', 'wb') as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(base + '.eml.tmp', base + '.eml')
        return '250 OK'


def main():
    port, outdir = int(sys.argv[1]), sys.argv[2]
    kw = {}
    if len(sys.argv) > 3:
        # USER:PASSWORD: require AUTH (over plain SMTP: loopback tests only)
        from aiosmtpd.smtp import AuthResult
        user, password = sys.argv[3].split(':', 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (auth_data.login.decode() == user and auth_data.password.decode() == password)
            return AuthResult(success=ok, handled=False)
        kw = {'authenticator': authenticator, 'auth_required': True,
              'auth_require_tls': False}
    c = Controller(Sink(outdir), hostname='127.0.0.1', port=port, **kw)
    c.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()


if __name__ == '__main__':
    main()
