/*
 * audit_export.h — where the audit chain leaves the store: the JSON Lines export file
 * with its torn-tail repair and rotation (audit_export.c), a set of export files read
 * back as one chain (audit_files.c), the signed head that says how far the chain
 * reached (audit_head.c), and RFC 3164 syslog datagrams (audit_syslog.c).
 */
#ifndef ELEVATE_AUDIT_EXPORT_H
#define ELEVATE_AUDIT_EXPORT_H

#include <stdint.h>
#include <stdio.h>

#include "elevate/audit.h"
#include "elevate/el.h"

/* ---- the export file (audit_export.c) ---- */

/*
 * The live export file. Rotated files sit next to it, named by the seq of their first
 * record: "/x/audit.jsonl" rotates to "/x/audit-000000000123.jsonl" (12 digits, zero
 * padded; a path without an extension gets "-000000000123" appended). Files are 0600.
 */
struct audit_out {
	char *path;
	int fd;                        /* -1: closed */
	int regular;                   /* a regular file (else a device or pipe: no fsync,
	                                  no rotation, no tail to read) */
	int64_t size;                  /* bytes in the file, all whole lines */
	int64_t synced;                /* size at the last successful fsync */
	int64_t first_seq;             /* first record in the live file, 0: empty */
	int64_t first_time;            /* its time (epoch s) */
	int64_t last_seq;              /* last record in the live file or, when it is empty,
	                                  in the newest rotated file; 0: none anywhere */
	int64_t rotate_bytes;          /* 0: never */
	int64_t rotate_age;            /* seconds, 0: never */
	int64_t torn_bytes;            /* a torn last line cut off at open (logged by caller) */
};

/*
 * Opens (creating it 0600, and making an existing file 0600) the live file. A last line
 * without its newline, or one that is not a record, is a torn write: it is cut off
 * (o->torn_bytes says how much). last_seq is read from the last whole line, or from the
 * newest rotated file when the live file is empty. On failure o is closed and w says
 * why; the caller may try again later.
 */
enum el_err audit_out_open(struct audit_out *o, const char *path, int64_t rotate_bytes,
    int64_t rotate_age, struct el_why *w);
/*
 * Appends one record line (without its newline; seq and time of the record) after
 * rotating when the size or age limit says so. Every write is checked: on a short or
 * failed write the file is cut back to its last whole line and EL_EIO is returned.
 */
enum el_err audit_out_write(struct audit_out *o, const char *line, size_t len, int64_t seq,
    int64_t time, struct el_why *w);
/* fsync; EL_EIO when the data may not be on disk. */
enum el_err audit_out_sync(struct audit_out *o, struct el_why *w);
/* Is a rotation by age due at `now`? */
int audit_out_rotate_due(const struct audit_out *o, int64_t now);
/* Renames the live file to its rotated name (fsync'd, directory too), starts a new one. */
enum el_err audit_out_rotate(struct audit_out *o, struct el_why *w);
void audit_out_close(struct audit_out *o);
/* The rotated name of path for a file whose first record is seq, into buf. */
enum el_err audit_rotated_name(const char *path, int64_t seq, char *buf, size_t len);
/* The time of a record ("2026-11-22T03:26:00.123Z") in epoch seconds; 0 when unreadable. */
int64_t audit_time_parse(const char *s);

/*
 * `elevated audit-export`: writes the records of the store with seq >= from to `to`,
 * which must not exist (created 0600 with O_EXCL, fsync'd). *n: how many.
 */
struct store;
enum el_err audit_export_to(struct store *s, int64_t from, const char *to, int64_t *n,
    struct el_why *w);

/* ---- several export files as one chain (audit_files.c) ---- */

struct audit_file_info {
	const char *path;              /* borrowed */
	int64_t first_seq, last_seq;
	int64_t lines;                 /* lines in the file */
};

/*
 * Opens paths (any order) as one stream, sorted by their first seq. Two files that do not
 * meet (a gap, or an overlap) fail with EL_ECRYPTO naming both files. *info (caller
 * frees) lists the files in stream order; *f is the concatenation (caller fcloses).
 */
enum el_err audit_files_open(char *const *paths, size_t n, FILE **f,
    struct audit_file_info **info, struct el_why *w);
/* Which file (and line in it) holds line `lineno` of the stream; NULL when none. */
const struct audit_file_info *audit_files_where(const struct audit_file_info *info, size_t n,
    int64_t lineno, int64_t *line_in_file);
/*
 * Looks up the record with `seq` in the stream f (rewound first) and copies its "hash"
 * (hex) into hex. EL_ENOENT when the stream has no such record.
 */
enum el_err audit_files_hash_at(FILE *f, int64_t seq, char hex[2 * AUDIT_HASH_BYTES + 1]);

/* ---- the signed head (audit_head.c) ---- */

/*
 * The newest signed head: {"seq": N, "hash": HEX, "time": T, "sig": BASE64}, sig being
 * Ed25519 over "elevate-audit-head\n" N "\n" HEX "\n" T. It names a checkpoint record
 * (which signs everything before it), so it covers every record through N.
 */
struct audit_head {
	int64_t seq;
	char hash[2 * AUDIT_HASH_BYTES + 1];
	char time[32];
};
/* Signs head with sk; returns its JSON text (caller frees), NULL when out of memory. */
char *audit_head_sign(const struct audit_head *h, const unsigned char sk[64]);
/* Parses and, with pk, verifies a head document. EL_ECRYPTO: the signature is bad. */
enum el_err audit_head_parse(const char *text, size_t len, const unsigned char *pk,
    struct audit_head *h, struct el_why *w);

/* ---- syslog datagrams (audit_syslog.c) ---- */

/* Facility code (LOG_AUTHPRIV ...) of a name; -1 when unknown. */
int audit_syslog_facility(const char *name);
/*
 * One RFC 3164 message: "<PRI>Mmm dd hh:mm:ss HOST elevated[PID]: MSG", PRI = facility
 * + LOG_INFO, local time. Into b (its ceiling bounds the message).
 */
enum el_err audit_syslog_format(struct dbuf *b, int facility, int64_t t, const char *host,
    long pid, const char *msg);
/* A datagram socket connected to path; -1 with w set. */
int audit_syslog_connect(const char *path, struct el_why *w);
/* Sends one message; EL_EIO with w set (the caller counts it and reconnects). */
enum el_err audit_syslog_send(int fd, const struct dbuf *b, struct el_why *w);

#endif
