/*
 * output.h — how `elevate` prints: human tables, relative times and terminal-safe text
 * by default, the API's JSON with --json; messages on stderr. Every string that came
 * from the broker goes through output_clean() before it reaches a terminal.
 */
#ifndef ELEVATE_CLI_OUTPUT_H
#define ELEVATE_CLI_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#include "cli.h"

void output_set_json(int on);
int output_json(void);

/* Pretty JSON of j on stdout followed by a newline. CLI_OK or CLI_ERR. */
int output_print_json(const json_t *j);

/* "elevate: MESSAGE" on stderr; the formatted text is cleaned of control characters. */
void output_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, then "usage: ..." of c; returns CLI_USAGE. fmt may be NULL (usage only). */
int output_usage(const struct cli_cmd *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Copies s into buf (size len) with control characters (C0, DEL, C1) replaced by '?'
 * and invalid UTF-8 by '?', so a reason typed by someone else cannot drive the
 * terminal; keeps at most maxchars characters (0: no limit), ending in "..." when cut.
 * s may be NULL (gives "").
 */
void output_clean(const char *s, size_t maxchars, char *buf, size_t len);
/* Characters (UTF-8 code points) in s. */
size_t output_width(const char *s);
/* True when s has an ASCII control character or DEL: refused in names typed by the user. */
int output_has_control(const char *s);

/* "5m ago" / "in 12m" / "now" relative to now; two units at most. */
void output_reltime(int64_t t, int64_t now, char *buf, size_t len);
/* "15m" / "1h30m" from seconds. */
void output_duration(int64_t secs, char *buf, size_t len);

/* Borrowed string member of obj, or NULL when absent / not a string. */
const char *output_str(const json_t *obj, const char *key);
/* Integer member, or def. */
int64_t output_int(const json_t *obj, const char *key, int64_t def);
/* Time member parsed, or 0 when absent / null / malformed. */
int64_t output_time(const json_t *obj, const char *key);

/*
 * A table printed with columns padded to their widest cell. Cells are cleaned and
 * copied; the last column is cut to fit the terminal when stdout is one.
 */
struct output_table;
struct output_table *output_table_new(size_t ncols, const char *const *heads);
/* Adds one row of ncols cells (NULL cell = ""). Silently stops at OUTPUT_TABLE_MAX rows. */
void output_table_add(struct output_table *t, const char *const *cells);
void output_table_print(struct output_table *t, FILE *f);
void output_table_free(struct output_table *t);
#define OUTPUT_TABLE_MAX 10000
#define OUTPUT_CELL_MAX 256

#endif
