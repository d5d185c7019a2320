/*
 * template.h — the mail and page templates: a small mustache subset rendered from a
 * jansson context, escaped for the template's kind, validated at load time with
 * file:line:col so `elevated check` reports every problem.
 *
 * Syntax:
 *   {{name}}            value, escaped for the kind (HTML: & < > " ' become entities;
 *                       text: control characters other than \n and \t removed). In every
 *                       kind C1 controls and Unicode bidi overrides are removed too, so a
 *                       reason cannot reorder what an approver reads.
 *   {{{name}}} {{&name}} raw value: only for values the broker itself built (the approval
 *                       link, public_url). The loader refuses it for any other variable.
 *   {{>name}}           a quoted block, text bodies only, alone on its line: each line of
 *                       the value (empty ones too) becomes the tag's indentation, "> " and
 *                       the line, so nothing in it can pass for the template's own text.
 *                       Text a user typed (reason, ticket, comments) may appear in a text
 *                       body only this way; the loader refuses {{reason}} there. Subjects
 *                       are one line and take it as {{reason}}.
 *   {{#name}}..{{/name}} a list: once per item, names resolve in the item first, then
 *                       outward; any other true value (true, non-empty string, non-zero
 *                       number, object): once, with the value as the innermost scope.
 *   {{^name}}..{{/name}} when the value is missing, null, false, "", 0 or [].
 *   {{a.b}}             dotted names: a resolved outward, then b inside it.
 *   {{.}}               the current item (a list of strings).
 *   {{! comment }}      dropped.
 * A section, inverted or comment tag alone on its line removes the whole line.
 * Values: strings, integers, reals, booleans (true/false), null (empty). A list or object
 * used as a value is an error at render time.
 *
 * Kind from the file extension: .html HTML, .txt text, .css CSS (no variables allowed).
 * A mail's .txt file starts with a "Subject: ..." line and an empty line; the subject
 * is a template too, rendered on one line.
 */
#ifndef ELEVATE_TEMPLATE_H
#define ELEVATE_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

#include "elevate/diag.h"
#include "elevate/el.h"

#define TEMPLATE_FILE_MAX   (64 * 1024)     /* a template file larger than this is refused */
#define TEMPLATE_OUT_MAX    (256 * 1024)    /* a sensible render ceiling for callers */
#define TEMPLATE_DEPTH_MAX  8               /* nested sections */
#define TEMPLATE_NAME_MAX   64              /* one variable name, dots included */

enum template_kind {
	TEMPLATE_TEXT,
	TEMPLATE_HTML,
	TEMPLATE_CSS,
};

struct template;        /* one compiled file */
struct template_set;    /* every known template, loaded from one directory */

/* Kind from a file name's extension; EL_EINVAL for an unknown extension. */
enum el_err template_kind_of(const char *name, enum template_kind *kind);

/*
 * Loads and validates every template elevate knows (the table in template.c) from dir.
 * Every problem goes to d (file:line:col), then EL_ECONFIG is returned and *out is NULL.
 * On EL_OK *out is owned by the caller: template_set_free(). d may be NULL.
 */
enum el_err template_set_load(const char *dir, struct template_set **out, struct diags *d);
void template_set_free(struct template_set *ts);

/* The kind of a loaded template ("approve_page.html"); EL_ENOENT if unknown. */
enum el_err template_set_kind(const struct template_set *ts, const char *name,
    enum template_kind *kind);

/*
 * Renders the template with file name `name` ("approve_page.html", "elevate.css",
 * "denied.txt" — for a mail .txt only the body, without its Subject line).
 * ctx is borrowed (NULL means no variables). Output at most max bytes, else EL_ETOOBIG.
 * *out is NUL-terminated, caller frees. EL_ENOENT for an unknown name; EL_EINVAL when ctx
 * holds a list or object where a value is used.
 */
enum el_err template_render(const struct template_set *ts, const char *name, json_t *ctx,
    size_t max, char **out, struct el_why *w);

/* One mail rendered from "<base>.txt" (subject and body) and "<base>.html". */
struct template_mail {
	char *subject;   /* one line, no control characters */
	char *text;
	char *html;
};
/* base is "approval_request", "denied", ... max bounds each part. Caller calls
 * template_mail_free() (also safe after a failure, which leaves every field NULL). */
enum el_err template_render_mail(const struct template_set *ts, const char *base,
    json_t *ctx, size_t max, struct template_mail *out, struct el_why *w);
void template_mail_free(struct template_mail *m);

/*
 * Lower level, for tests and tools: compiles one template from memory.
 * file names it in diagnostics. allowed lists the permitted variables, space separated:
 * "name" may be used escaped, "name!" also raw, "name>" is text a user typed (quoted in
 * a text body), "list.field" is a field of list's items;
 * NULL allows every name, raw included. EL_ECONFIG with d filled on a problem.
 * *out is owned by the caller: template_free().
 */
enum el_err template_compile(const char *file, const char *src, size_t len,
    enum template_kind kind, const char *allowed, struct template **out, struct diags *d);
enum el_err template_render_one(const struct template *t, json_t *ctx, size_t max,
    char **out, struct el_why *w);
void template_free(struct template *t);

#endif
