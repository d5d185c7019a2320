/*
 * el.h — the one error type, bounded buffers, and small helpers every module shares
 * (durations, times, base64, bounded string copies, strict integer parsing).
 */
#ifndef ELEVATE_EL_H
#define ELEVATE_EL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum el_err {
	EL_OK = 0,
	EL_ENOMEM,     /* out of memory */
	EL_EINVAL,     /* invalid argument or input */
	EL_ENOENT,     /* no such object */
	EL_EEXIST,     /* already exists / already decided */
	EL_EPERM,      /* not allowed */
	EL_ESTATE,     /* wrong state for this operation */
	EL_ETOOBIG,    /* a ceiling was reached */
	EL_EIO,        /* file or system I/O */
	EL_EDB,        /* store failure */
	EL_ECRYPTO,    /* signature/crypto failure */
	EL_EAUTH,      /* authentication failure */
	EL_EPARSE,     /* malformed document */
	EL_ENET,       /* network failure */
	EL_ETIMEOUT,   /* timed out */
	EL_EAWS,       /* AWS answered with an error */
	EL_ECONFIG,    /* configuration problem */
	EL__MAX
};

const char *el_strerror(enum el_err e);

/* Why a call failed, for humans: filled by the callee, never contains secrets. */
#define EL_WHYLEN 512
struct el_why {
	char msg[EL_WHYLEN];
};
/* Set w->msg (printf-style); w may be NULL. Returns e so callers can `return el_fail(...)`. */
enum el_err el_fail(struct el_why *w, enum el_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * dbuf — a growable byte buffer with a hard ceiling fixed at init (curl's dynbuf).
 * The content is always NUL-terminated (not counted in len).
 */
struct dbuf {
	char *p;
	size_t len;
	size_t cap;
	size_t max;
};
void dbuf_init(struct dbuf *b, size_t max);
enum el_err dbuf_add(struct dbuf *b, const void *data, size_t len);
enum el_err dbuf_adds(struct dbuf *b, const char *s);
enum el_err dbuf_printf(struct dbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum el_err dbuf_vprintf(struct dbuf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void dbuf_reset(struct dbuf *b);
/* Frees the memory; wipes it first when it may hold a secret. */
void dbuf_free(struct dbuf *b);
void dbuf_free_secret(struct dbuf *b);
/* Takes the string out of b (caller frees); b is left empty. Never NULL on success. */
char *dbuf_take(struct dbuf *b);

/* Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF): 1 when
 * s[0..len) is valid. */
int el_utf8_valid(const unsigned char *s, size_t len);
/* Bounded copy: always terminates, returns strlen(src) (truncated if >= dstsize). */
size_t el_strlcpy(char *dst, const char *src, size_t dstsize);
/* Exponential backoff: `first` for attempt 1, doubling each attempt, at most `cap`. */
int64_t el_backoff(int attempt, int64_t first, int64_t cap);
/* Frees n strings and the array that holds them (v may be NULL). */
void el_strv_free(char **v, size_t n);
/* Splits "a,b,c" at sep into *out (*n items; free with el_strv_free): refuses an empty
 * item, one longer than item_max bytes, the same item twice and more than max items,
 * with a message saying which. */
enum el_err el_split_list(const char *s, char sep, size_t max, size_t item_max,
    char ***out, size_t *n, struct el_why *w);
/* Strict integer parse: whole string, base 10, within [min,max]. */
enum el_err el_parse_int(const char *s, long long min, long long max, long long *out);

/* Durations: "90s", "15m", "1h30m", "2h", "1d" (also a plain number of seconds).
 * Result in seconds, > 0, at most EL_DURATION_MAX (366 days). */
#define EL_DURATION_MAX (366LL * 86400)
enum el_err el_parse_duration(const char *s, int64_t *secs);
/* "1h30m", "15m", "45s": shortest form; buf of 32 bytes is enough. */
void el_format_duration(int64_t secs, char *buf, size_t len);

/* Time: seconds since the epoch, UTC. */
int64_t el_now(void);
/* Milliseconds since the epoch. */
int64_t el_now_ms(void);
/* "2026-11-22T03:26:00Z"; buf >= 21 bytes. */
void el_format_time(int64_t t, char *buf, size_t len);
/* Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" (or +00:00). */
enum el_err el_parse_time(const char *s, int64_t *t);
/* The same, or with an RFC 3339 numeric offset: "2026-12-02T09:00:00+09:00". */
enum el_err el_parse_time_offset(const char *s, int64_t *t);

/* Base64 (standard, padded) and base64url (no padding). Caller frees the result. */
char *el_b64_encode(const unsigned char *in, size_t len);
char *el_b64url_encode(const unsigned char *in, size_t len);
/* The same as el_b64_encode, by table lookups: several times faster, and its timing
 * depends on the bytes, so for what is not secret only (a ciphertext). */
char *el_b64_encode_public(const unsigned char *in, size_t len);
/* Decodes into out (capacity outcap); *outlen gets the length. Ignores nothing: strict. */
enum el_err el_b64_decode(const char *in, unsigned char *out, size_t outcap, size_t *outlen);
enum el_err el_b64url_decode(const char *in, unsigned char *out, size_t outcap, size_t *outlen);
/* Lowercase hex; out must hold 2*len+1. */
void el_hex(const unsigned char *in, size_t len, char *out);
/* The value of one hex digit (either case), or -1. */
int el_hexval(int c);

/* Reads a whole file up to max bytes (caller frees, NUL-terminated). */
enum el_err el_read_file(const char *path, size_t max, char **out, size_t *outlen, struct el_why *w);
/*
 * Reads a password file (`what` names it in messages): a regular file not readable by
 * every user, one line of at most EL_PASSWORD_MAX bytes (one trailing newline dropped).
 * *out: caller frees with el_password_free(), which wipes it.
 */
#define EL_PASSWORD_MAX 1024
enum el_err el_read_password_file(const char *path, const char *what, char **out,
    struct el_why *w);
void el_password_free(char *p);
/* Writes a file atomically (tmp + rename) with the given mode. */
enum el_err el_write_file(const char *path, const void *data, size_t len, int mode, struct el_why *w);
/*
 * Puts a new file at path, never half-written: data goes to a temporary file next to it
 * (created with O_EXCL, then given mode, fsync'd) that is then linked into place. With
 * replace = 0 an existing path is left alone and EL_EEXIST returned (link(2): of two
 * writers racing, exactly one wins); with replace = 1 it is replaced (rename(2)).
 */
enum el_err el_install_file(const char *path, const void *data, size_t len, int mode,
    int replace, struct el_why *w);
/* mkdir -p with mode for created directories. */
enum el_err el_mkdirs(const char *path, int mode);

/* Random identifier of n random bytes, base32-ish lowercase ("req_" prefix added by callers). */
void el_random_id(char *buf, size_t len, size_t nbytes);

/*
 * Makes jansson wipe every block it frees (credentials, tokens and keys pass through JSON
 * documents). Call once at start-up, before any json_* call.
 */
void el_json_wipe_on_free(void);
/* A time as JSON: the ISO 8601 string of t (seconds), or null when t <= 0. New ref
 * (jansson's json_t). */
struct json_t *el_time_json(int64_t t);

#endif
