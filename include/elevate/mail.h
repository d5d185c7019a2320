/*
 * mail.h — building one RFC 5322 message (multipart/alternative, text and HTML, UTF-8,
 * quoted-printable) and sending it over SMTP with libcurl. The only code that speaks SMTP.
 *
 * The message is built by this module, not by curl_mime, so its bytes are fixed before
 * sending: the outbox can store them, a retry sends exactly the same message with the
 * same Message-ID (receivers de-duplicate on it), and tests can read them back.
 */
#ifndef ELEVATE_MAIL_H
#define ELEVATE_MAIL_H

#include <stddef.h>
#include <stdint.h>

#include "elevate/el.h"

#define MAIL_MAX_SIZE     (1024 * 1024)   /* a built message never exceeds this */
#define MAIL_ADDR_MAX     254             /* an addr-spec, RFC 5321 */
#define MAIL_PASSWORD_MAX EL_PASSWORD_MAX

/*
 * Addresses are "local@domain" or "Display Name <local@domain>". The addr-spec must be
 * plain printable ASCII without spaces, quotes, <>()[],;: or backslash, with a domain of
 * letters, digits, '-' and dots. The display name may be any UTF-8 (it is encoded).
 */
struct mail_msg {
	const char *from;
	const char *const *to;      /* nto addresses, each one as above */
	size_t nto;
	const char *subject;        /* UTF-8; CR, LF and tabs become spaces */
	const char *text;           /* UTF-8 body; required */
	const char *html;           /* UTF-8 body; NULL sends text/plain only */
	const char *message_id;     /* "<outbox-17.req_abc@elevate>": stable per outbox row */
	int64_t date;               /* seconds since the epoch */
};

/*
 * Builds the complete message (CRLF line endings, header lines at most 76 characters,
 * headers Date, From, To, Subject, Message-ID, MIME-Version, Auto-Submitted,
 * Content-Type). The result depends only on *m (the MIME boundary is derived from the
 * Message-ID), so building twice gives the same bytes.
 * out is initialised here with the MAIL_MAX_SIZE ceiling; caller calls dbuf_free().
 * EL_EINVAL for a bad address, Message-ID or body; EL_ETOOBIG over MAIL_MAX_SIZE.
 * On failure out is empty.
 */
enum el_err mail_build(const struct mail_msg *m, struct dbuf *out, struct el_why *w);

/*
 * Extracts and checks the addr-spec of an address ("Carol <carol@x.org>" gives
 * "carol@x.org") into out (outlen >= MAIL_ADDR_MAX + 1). EL_EINVAL when it is not valid.
 */
enum el_err mail_addr_spec(const char *addr, char *out, size_t outlen);

struct mail_server {
	const char *url;        /* smtp://host[:port] or smtps://host[:port] */
	const char *username;   /* NULL: no AUTH */
	const char *password;   /* borrowed; never logged */
	int require_starttls;   /* smtp:// only: refuse to send unless STARTTLS succeeds */
	long timeout_ms;        /* whole transaction; 0 means 30 s */
	const char *ca_file;    /* NULL: the system's CAs */
};

/*
 * Sends one built message to nrcpt recipients (addresses as in struct mail_msg, the
 * envelope uses their addr-specs). TLS certificates are always verified. A password is
 * only sent over TLS (smtps://, require_starttls) or to a loopback host.
 * Errors, with w saying what failed and the server's last reply:
 *   EL_EINVAL    bad address or URL: do not retry
 *   EL_EPERM     the server refused for good (5xx on MAIL, RCPT or DATA): do not retry
 *   EL_EAUTH     login refused: fix the credentials
 *   EL_ENET      connection refused, DNS, TLS or STARTTLS failure, 4xx: retry later
 *   EL_ETIMEOUT  timed out: retry later
 */
enum el_err mail_send(const struct mail_server *srv, const char *from,
    const char *const *rcpt, size_t nrcpt, const struct dbuf *message, struct el_why *w);

/*
 * Reads an SMTP password file: at most MAIL_PASSWORD_MAX bytes, one trailing newline
 * removed, no other line breaks. Refuses a file that others may read or write.
 * *out: caller frees with mail_password_free() (it wipes).
 */
enum el_err mail_read_password_file(const char *path, char **out, struct el_why *w);
void mail_password_free(char *p);

#endif
