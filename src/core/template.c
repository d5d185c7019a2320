/*
 * template.c — owns the templates: the table of every template elevate knows with the
 * variables each may use, the mustache-subset parser that validates them with
 * file:line:col, and the renderer that escapes values for the template's kind.
 * The syntax and the escaping rules are in template.h.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/diag.h"
#include "elevate/el.h"
#include "elevate/template.h"

/*
 * Every template elevate loads, one row per template, with the variables it may use
 * (the engine and the HTTP pages fill exactly these; `elevated check` rejects others).
 * "x!" may also be used raw ({{{x}}}): only values the broker builds itself.
 * "x>" is text a user typed: the body of a text template shows it only as a quoted
 * block ({{>x}}), so none of its lines can pass for the broker's own words.
 * "list.field" is a field of each item of the list "list".
 * A mail row is two files, base.txt (first line "Subject: ...") and base.html; a page
 * row is base.html; a static row is the file named base, served as is.
 */
#define COMMON "request_id requester profile role_arn account region duration reason> " \
	"ticket> recipient public_url! "
#define APPROVALS "approvals approvals.approver approvals.decision approvals.comment> " \
	"approvals.decided_at "

enum tdef_form { FORM_MAIL, FORM_PAGE, FORM_STATIC };

static const struct tdef {
	const char *base;
	enum tdef_form form;
	const char *vars;
} tdefs[] = {
	{ "approval_request", FORM_MAIL,
	    COMMON "window link! expires approvals_required" },
	{ "approved", FORM_MAIL,
	    COMMON "window_start window_end " APPROVALS },
	{ "denied", FORM_MAIL,
	    COMMON "denied_by comment> decided_at" },
	{ "lapsed", FORM_MAIL,
	    COMMON "expires approvals_count approvals_required" },
	{ "failed", FORM_MAIL,
	    COMMON "aws_code aws_message failed_at" },
	{ "ending_soon", FORM_MAIL,
	    COMMON "window_end remaining" },
	{ "ended", FORM_MAIL,
	    COMMON "window_start window_end ended_at revoked_by sessions_terminated" },
	{ "decided_by_others", FORM_MAIL,
	    COMMON "outcome decided_by" },
	{ "revocation_failed", FORM_MAIL,
	    COMMON "window_end error attempts next_retry" },
	{ "break_glass", FORM_MAIL,
	    COMMON "review_due" },
	{ "break_glass_escalated", FORM_MAIL,
	    COMMON "review_due" },
	{ "audit_export_failed", FORM_MAIL,
	    COMMON "file error since" },
	{ "bundle_approval_request", FORM_MAIL,
	    COMMON "bundle_id roles_count window link! expires roles roles.profile "
	    "roles.role_arn roles.approvals_required roles.yours" },
	{ "bundle_page", FORM_PAGE,
	    COMMON "bundle_id roles_count approver window expires roles roles.profile "
	    "roles.role_arn roles.state roles.approvals_count roles.approvals_required "
	    "roles.missing roles.decidable" },
	{ "approve_page", FORM_PAGE,
	    COMMON "approver window expires approvals_required approvals_count " APPROVALS },
	{ "result_page", FORM_PAGE,
	    COMMON "title message comment> approved denied refused" },
	{ "elevate.css", FORM_STATIC, "" },
};
#define NTDEFS (sizeof(tdefs) / sizeof(tdefs[0]))

enum node_type { NODE_TEXT, NODE_VAR, NODE_RAW, NODE_QUOTE, NODE_SECTION, NODE_INVERTED };

struct node {
	enum node_type type;
	size_t off;     /* text: first byte in src; tags: where the tag starts */
	size_t len;     /* text: its length; quote: the indentation just before off */
	size_t end;     /* sections: index of the first node after the section */
	char name[TEMPLATE_NAME_MAX + 1];
};

struct template {
	char *name;                  /* file name: "approve_page.html" */
	char *file;                  /* path, for messages */
	enum template_kind kind;
	int oneline;                 /* a mail subject: values lose their newlines */
	char *src;                   /* the whole file; nodes point into it */
	struct node *nodes;
	size_t n, cap;
	struct template *subject;    /* mail .txt: its Subject line */
};

struct template_set {
	struct template **v;
	size_t n;
};

#define PATH_LEN (TEMPLATE_DEPTH_MAX * (TEMPLATE_NAME_MAX + 1))

struct parser {
	const char *file;
	const char *src;
	const char *allowed;
	struct diags *d;
	int errors;
	struct template *t;
	size_t depth;
	size_t open[TEMPLATE_DEPTH_MAX];          /* node index of each open section */
	char path[TEMPLATE_DEPTH_MAX][PATH_LEN];  /* its name as resolved in the table */
};

/* Decodes one strict UTF-8 sequence; returns its length, 0 when invalid. */
static size_t
utf8_next(const unsigned char *s, size_t n, unsigned long *cp)
{
	unsigned long c;
	size_t need, i;

	if (n == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 1;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 2;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 3;
		c = s[0] & 0x07;
	} else
		return 0;
	if (n < need + 1)
		return 0;
	for (i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((need == 2 && c < 0x800) || (need == 3 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return need + 1;
}

static void
linecol(const char *src, size_t off, int *line, int *col)
{
	size_t i;
	int l = 1, c = 1;

	for (i = 0; i < off; i++) {
		if (src[i] == '\n') {
			l++;
			c = 1;
		} else
			c++;
	}
	*line = l;
	*col = c;
}

static void perr(struct parser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
perr(struct parser *p, size_t off, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	int line, col;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	linecol(p->src, off, &line, &col);
	if (p->d != NULL)
		diags_add(p->d, p->file, NULL, line, col, "%s", msg);
	p->errors++;
}

static struct node *
add_node(struct parser *p, enum node_type type, size_t off)
{
	struct template *t = p->t;
	struct node *nv;
	size_t ncap;

	if (t->n == t->cap) {
		ncap = t->cap ? t->cap * 2 : 32;
		if ((nv = reallocarray(t->nodes, ncap, sizeof(*nv))) == NULL)
			return NULL;
		t->nodes = nv;
		t->cap = ncap;
	}
	nv = &t->nodes[t->n++];
	memset(nv, 0, sizeof(*nv));
	nv->type = type;
	nv->off = off;
	return nv;
}

/*
 * Is name (len bytes) in the allowed list? *mark is the mark it carries: '!', '>' or 0.
 * NULL allows everything, raw included.
 */
static int
allowed_has(const char *allowed, const char *name, size_t len, char *mark)
{
	const char *s = allowed, *e;
	size_t tl;

	if (allowed == NULL) {
		*mark = '!';
		return 1;
	}
	while (*s != '\0') {
		while (*s == ' ')
			s++;
		e = s;
		while (*e != '\0' && *e != ' ')
			e++;
		tl = (size_t)(e - s);
		if (tl > 0 && (s[tl - 1] == '!' || s[tl - 1] == '>')) {
			if (tl - 1 == len && memcmp(s, name, len) == 0) {
				*mark = s[tl - 1];
				return 1;
			}
		} else if (tl == len && tl > 0 && memcmp(s, name, len) == 0) {
			*mark = '\0';
			return 1;
		}
		s = e;
	}
	return 0;
}

/*
 * Resolves a name the way rendering does, innermost section first, against the table.
 * Writes the resolved path (for a section's children) into path.
 */
static int
resolve_name(struct parser *p, const char *name, char *path, size_t pathlen, char *mark)
{
	size_t i;
	char cand[PATH_LEN + TEMPLATE_NAME_MAX + 2];
	int n;

	for (i = p->depth; i > 0; i--) {
		n = snprintf(cand, sizeof(cand), "%s.%s", p->path[i - 1], name);
		if (n < 0 || (size_t)n >= sizeof(cand))
			continue;
		if (allowed_has(p->allowed, cand, (size_t)n, mark)) {
			el_strlcpy(path, cand, pathlen);
			return 1;
		}
	}
	if (allowed_has(p->allowed, name, strlen(name), mark)) {
		el_strlcpy(path, name, pathlen);
		return 1;
	}
	return 0;
}

static int
name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '_' || c == '-';
}

/* Extracts and checks a tag's name; 0 (with a diagnostic) when it is not valid. */
static int
tag_name(struct parser *p, size_t tag, size_t s, size_t e, char *out)
{
	const char *src = p->src;
	size_t i, len;

	while (s < e && (src[s] == ' ' || src[s] == '\t'))
		s++;
	while (e > s && (src[e - 1] == ' ' || src[e - 1] == '\t'))
		e--;
	len = e - s;
	if (len == 0) {
		perr(p, tag, "empty tag name");
		return 0;
	}
	if (len > TEMPLATE_NAME_MAX) {
		perr(p, tag, "tag name longer than %d characters", TEMPLATE_NAME_MAX);
		return 0;
	}
	if (!(len == 1 && src[s] == '.')) {
		for (i = s; i < e; i++) {
			if (name_char(src[i]))
				continue;
			if (src[i] == '.' && i > s && i + 1 < e && src[i + 1] != '.')
				continue;
			perr(p, tag, "invalid tag name '%.*s' (letters, digits, _ - and dots)",
			    (int)len, src + s);
			return 0;
		}
	}
	memcpy(out, src + s, len);
	out[len] = '\0';
	return 1;
}

static enum el_err
add_text(struct parser *p, size_t from, size_t to)
{
	struct node *nd;

	if (to <= from)
		return EL_OK;
	if ((nd = add_node(p, NODE_TEXT, from)) == NULL)
		return EL_ENOMEM;
	nd->len = to - from;
	return EL_OK;
}

/*
 * One tag: sigil is 0 for a value, else the character after "{{". standalone says the tag
 * is alone on its line, after indent bytes of blanks.
 */
static enum el_err
handle_tag(struct parser *p, char sigil, size_t tag, size_t s, size_t e, int standalone,
    size_t indent)
{
	char name[TEMPLATE_NAME_MAX + 1];
	char path[PATH_LEN];
	struct node *nd;
	size_t top;
	char mark = '\0';
	int known = 1, ln, col;
	/* Where a line break in a value starts a line of its own. */
	int body_text = p->t->kind == TEMPLATE_TEXT && !p->t->oneline;

	switch (sigil) {
	case '!':
		return EL_OK;
	case '=':
		perr(p, tag, "changing delimiters ({{=...=}}) is not supported");
		return EL_OK;
	}
	if (!tag_name(p, tag, s, e, name))
		return EL_OK;
	if (sigil == '/') {
		if (p->depth == 0) {
			perr(p, tag, "{{/%s}} closes no open section", name);
			return EL_OK;
		}
		top = p->open[p->depth - 1];
		if (strcmp(p->t->nodes[top].name, name) != 0) {
			linecol(p->src, p->t->nodes[top].off, &ln, &col);
			perr(p, tag, "{{/%s}} does not close {{%c%s}} opened at %d:%d", name,
			    p->t->nodes[top].type == NODE_SECTION ? '#' : '^',
			    p->t->nodes[top].name, ln, col);
		}
		p->t->nodes[top].end = p->t->n;
		p->depth--;
		return EL_OK;
	}
	if (strcmp(name, ".") == 0) {
		if (p->depth == 0 || sigil == '#' || sigil == '^')
			perr(p, tag, "{{.}} is only allowed as a value inside a section");
		path[0] = '\0';
		/* Raw only when everything is; text a user typed stays that inside its section. */
		if (p->allowed == NULL)
			mark = '!';
		else if (p->depth == 0 || !allowed_has(p->allowed, p->path[p->depth - 1],
		    strlen(p->path[p->depth - 1]), &mark) || mark != '>')
			mark = '\0';
	} else if (!resolve_name(p, name, path, sizeof(path), &mark)) {
		perr(p, tag, "unknown variable '%s' in this template%s", name, sigil == '>' ?
		    " ({{>...}} quotes a value; partials are not supported)" : "");
		path[0] = '\0';
		known = 0;
	} else if ((sigil == '{' || sigil == '&') && mark != '!') {
		perr(p, tag, "'%s' may not be inserted raw: use {{%s}}", name, name);
	}
	if (known && sigil == '>' && !body_text)
		perr(p, tag, "{{>%s}} quotes lines: only in the body of a text template, "
		    "elsewhere use {{%s}}", name, name);
	else if (known && sigil == '>' && !standalone)
		perr(p, tag, "{{>%s}} must stand alone on its line: each line of the value "
		    "becomes a quoted line", name);
	else if (mark == '>' && body_text && sigil == '\0')
		perr(p, tag, "'%s' is text a user typed: quote it with {{>%s}} alone on a line",
		    name, name);
	if (sigil == '#' || sigil == '^') {
		if (p->depth == TEMPLATE_DEPTH_MAX) {
			perr(p, tag, "sections nested deeper than %d", TEMPLATE_DEPTH_MAX);
			return EL_OK;
		}
		if ((nd = add_node(p, sigil == '#' ? NODE_SECTION : NODE_INVERTED, tag)) == NULL)
			return EL_ENOMEM;
		memcpy(nd->name, name, sizeof(name));
		p->open[p->depth] = p->t->n - 1;
		el_strlcpy(p->path[p->depth], path[0] ? path : name, PATH_LEN);
		p->depth++;
		return EL_OK;
	}
	if ((nd = add_node(p, sigil == '>' ? NODE_QUOTE : sigil == '{' || sigil == '&' ?
	    NODE_RAW : NODE_VAR, tag)) == NULL)
		return EL_ENOMEM;
	memcpy(nd->name, name, sizeof(name));
	if (sigil == '>')
		nd->len = indent;
	return EL_OK;
}

/* Parses src[start, end) into p->t->nodes; problems go to p->d. */
static enum el_err
parse_range(struct parser *p, size_t start, size_t end)
{
	const char *src = p->src;
	const char *hit;
	size_t pos = start, tag, s, e, after, text_end, next, ls, x;
	char sigil;
	int standalone;
	enum el_err r;

	while (pos < end) {
		hit = memmem(src + pos, end - pos, "{{", 2);
		if (hit == NULL)
			return add_text(p, pos, end);
		tag = (size_t)(hit - src);
		if (tag + 2 < end && src[tag + 2] == '{') {
			sigil = '{';
			s = tag + 3;
			hit = s < end ? memmem(src + s, end - s, "}}}", 3) : NULL;
			if (hit == NULL) {
				perr(p, tag, "'{{{' is never closed by '}}}'");
				return EL_OK;
			}
			e = (size_t)(hit - src);
			after = e + 3;
		} else {
			s = tag + 2;
			hit = s < end ? memmem(src + s, end - s, "}}", 2) : NULL;
			if (hit == NULL) {
				perr(p, tag, "'{{' is never closed by '}}'");
				return EL_OK;
			}
			e = (size_t)(hit - src);
			after = e + 2;
			sigil = s < e ? src[s] : '\0';
			if (sigil != '\0' && strchr("#^/!&=>", sigil) != NULL)
				s++;
			else
				sigil = '\0';
		}
		text_end = tag;
		next = after;
		ls = tag;
		standalone = 0;
		/*
		 * A block tag alone on its line takes the line with it (mustache "standalone");
		 * a quoted block must be alone, and writes whole lines itself.
		 */
		if (sigil == '#' || sigil == '^' || sigil == '/' || sigil == '!' || sigil == '>') {
			while (ls > pos && (src[ls - 1] == ' ' || src[ls - 1] == '\t'))
				ls--;
			if (ls == start || src[ls - 1] == '\n') {
				x = after;
				while (x < end && (src[x] == ' ' || src[x] == '\t'))
					x++;
				if (x == end || src[x] == '\n' ||
				    (src[x] == '\r' && x + 1 < end && src[x + 1] == '\n')) {
					standalone = 1;
					text_end = ls;
					next = x == end ? x : (src[x] == '\n' ? x + 1 : x + 2);
				}
			}
		}
		if ((r = add_text(p, pos, text_end)) != EL_OK)
			return r;
		if ((r = handle_tag(p, sigil, tag, s, e, standalone, tag - ls)) != EL_OK)
			return r;
		pos = next;
	}
	return EL_OK;
}

void
template_free(struct template *t)
{
	if (t == NULL)
		return;
	template_free(t->subject);
	free(t->name);
	free(t->file);
	free(t->src);
	free(t->nodes);
	free(t);
}

static const char *
base_name(const char *file)
{
	const char *b = strrchr(file, '/');

	return b != NULL ? b + 1 : file;
}

/* Compiles src[start, end) (positions count from the start of the whole file). */
static enum el_err
compile_range(const char *file, const char *src, size_t len, size_t start, size_t end,
    enum template_kind kind, int oneline, const char *allowed, struct template **out,
    struct diags *d)
{
	struct parser p;
	struct template *t;
	enum el_err r = EL_OK;
	unsigned long cp;
	size_t i, k;

	*out = NULL;
	memset(&p, 0, sizeof(p));
	p.file = file;
	p.src = src;
	p.allowed = allowed;
	p.d = d;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return EL_ENOMEM;
	p.t = t;
	t->kind = kind;
	t->oneline = oneline;
	if ((t->name = strdup(base_name(file))) == NULL || (t->file = strdup(file)) == NULL ||
	    (t->src = malloc(len + 1)) == NULL) {
		r = EL_ENOMEM;
		goto out;
	}
	memcpy(t->src, src, len);
	t->src[len] = '\0';
	p.src = t->src;
	for (i = start; i < end; i += k) {
		if (t->src[i] == '\0') {
			perr(&p, i, "contains a NUL byte");
			goto out;
		}
		if ((k = utf8_next((const unsigned char *)t->src + i, end - i, &cp)) == 0) {
			perr(&p, i, "not valid UTF-8 text");
			goto out;
		}
	}
	if ((r = parse_range(&p, start, end)) != EL_OK)
		goto out;
	while (p.depth > 0) {
		i = p.open[--p.depth];
		perr(&p, t->nodes[i].off, "{{%c%s}} is never closed",
		    t->nodes[i].type == NODE_SECTION ? '#' : '^', t->nodes[i].name);
	}
out:
	if (r == EL_OK && p.errors > 0)
		r = EL_ECONFIG;
	if (r != EL_OK) {
		template_free(t);
		return r;
	}
	*out = t;
	return EL_OK;
}

enum el_err
template_compile(const char *file, const char *src, size_t len, enum template_kind kind,
    const char *allowed, struct template **out, struct diags *d)
{
	if (len > TEMPLATE_FILE_MAX) {
		if (d != NULL)
			diags_add(d, file, NULL, 0, 0, "larger than %d bytes", TEMPLATE_FILE_MAX);
		*out = NULL;
		return EL_ECONFIG;
	}
	return compile_range(file, src, len, 0, len, kind, 0, allowed, out, d);
}

/*
 * A mail's .txt: "Subject: ...\n\nbody". The subject and the body compile separately so
 * that a value with a newline can never end the subject early.
 */
static enum el_err
compile_mail_text(const char *file, const char *src, size_t len, const char *allowed,
    struct template **out, struct diags *d)
{
	static const char pfx[] = "Subject:";
	struct template *body = NULL, *subj = NULL;
	const char *nl;
	size_t s, e, b;
	enum el_err r, r2;

	*out = NULL;
	nl = memchr(src, '\n', len);
	if (len < sizeof(pfx) - 1 || memcmp(src, pfx, sizeof(pfx) - 1) != 0 || nl == NULL) {
		if (d != NULL)
			diags_add(d, file, NULL, 1, 1, "a mail's text template starts with a "
			    "'Subject: ...' line, then an empty line, then the body");
		return EL_ECONFIG;
	}
	e = (size_t)(nl - src);
	b = e + 1;
	if (b < len && src[b] == '\r')
		b++;
	if (b >= len || src[b] != '\n') {
		if (d != NULL)
			diags_add(d, file, NULL, 2, 1, "the Subject line must be followed by an "
			    "empty line");
		return EL_ECONFIG;
	}
	b++;
	s = sizeof(pfx) - 1;
	while (s < e && (src[s] == ' ' || src[s] == '\t'))
		s++;
	while (e > s && (src[e - 1] == '\r' || src[e - 1] == ' ' || src[e - 1] == '\t'))
		e--;
	if (s == e) {
		if (d != NULL)
			diags_add(d, file, NULL, 1, 1, "empty Subject");
		return EL_ECONFIG;
	}
	r = compile_range(file, src, len, s, e, TEMPLATE_TEXT, 1, allowed, &subj, d);
	r2 = compile_range(file, src, len, b, len, TEMPLATE_TEXT, 0, allowed, &body, d);
	if (r == EL_OK)
		r = r2;
	if (r != EL_OK) {
		template_free(subj);
		template_free(body);
		return r;
	}
	body->subject = subj;
	*out = body;
	return EL_OK;
}

enum el_err
template_kind_of(const char *name, enum template_kind *kind)
{
	const char *dot = strrchr(name, '.');

	if (dot == NULL)
		return EL_EINVAL;
	if (strcmp(dot, ".html") == 0)
		*kind = TEMPLATE_HTML;
	else if (strcmp(dot, ".txt") == 0)
		*kind = TEMPLATE_TEXT;
	else if (strcmp(dot, ".css") == 0)
		*kind = TEMPLATE_CSS;
	else
		return EL_EINVAL;
	return EL_OK;
}

void
template_set_free(struct template_set *ts)
{
	size_t i;

	if (ts == NULL)
		return;
	for (i = 0; i < ts->n; i++)
		template_free(ts->v[i]);
	free(ts->v);
	free(ts);
}

/* Loads one file of the table into ts; problems are counted in *bad. */
static enum el_err
load_one(struct template_set *ts, const char *dir, const char *fname, const struct tdef *td,
    int mail_text, struct diags *d, int *bad)
{
	char path[PATH_MAX];
	struct el_why why;
	struct template *t = NULL;
	enum template_kind kind;
	char *src = NULL;
	size_t len = 0;
	enum el_err r;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, fname) >= sizeof(path)) {
		if (d != NULL)
			diags_add(d, dir, NULL, 0, 0, "path too long");
		(*bad)++;
		return EL_OK;
	}
	if (template_kind_of(fname, &kind) != EL_OK)
		return EL_EINVAL;   /* a bad row in the table, not a user error */
	why.msg[0] = '\0';
	r = el_read_file(path, TEMPLATE_FILE_MAX, &src, &len, &why);
	if (r == EL_ENOENT) {
		if (d != NULL)
			diags_add(d, path, NULL, 0, 0, "missing template");
		(*bad)++;
		return EL_OK;
	} else if (r == EL_ETOOBIG) {
		if (d != NULL)
			diags_add(d, path, NULL, 0, 0, "larger than %d bytes", TEMPLATE_FILE_MAX);
		(*bad)++;
		return EL_OK;
	} else if (r != EL_OK) {
		if (d != NULL)
			diags_add(d, path, NULL, 0, 0, "%s", why.msg);
		(*bad)++;
		return EL_OK;
	}
	if (mail_text)
		r = compile_mail_text(path, src, len, td->vars, &t, d);
	else
		r = compile_range(path, src, len, 0, len, kind, 0, td->vars, &t, d);
	free(src);
	if (r == EL_ECONFIG) {
		(*bad)++;
		return EL_OK;
	}
	if (r != EL_OK)
		return r;
	ts->v[ts->n++] = t;
	return EL_OK;
}

enum el_err
template_set_load(const char *dir, struct template_set **out, struct diags *d)
{
	struct template_set *ts;
	char fname[128];
	size_t i;
	int bad = 0;
	enum el_err r = EL_OK;

	*out = NULL;
	if ((ts = calloc(1, sizeof(*ts))) == NULL)
		return EL_ENOMEM;
	if ((ts->v = calloc(2 * NTDEFS, sizeof(*ts->v))) == NULL) {
		r = EL_ENOMEM;
		goto out;
	}
	for (i = 0; i < NTDEFS; i++) {
		const struct tdef *td = &tdefs[i];

		switch (td->form) {
		case FORM_MAIL:
			snprintf(fname, sizeof(fname), "%s.txt", td->base);
			if ((r = load_one(ts, dir, fname, td, 1, d, &bad)) != EL_OK)
				goto out;
			snprintf(fname, sizeof(fname), "%s.html", td->base);
			if ((r = load_one(ts, dir, fname, td, 0, d, &bad)) != EL_OK)
				goto out;
			break;
		case FORM_PAGE:
			snprintf(fname, sizeof(fname), "%s.html", td->base);
			if ((r = load_one(ts, dir, fname, td, 0, d, &bad)) != EL_OK)
				goto out;
			break;
		case FORM_STATIC:
			if ((r = load_one(ts, dir, td->base, td, 0, d, &bad)) != EL_OK)
				goto out;
			break;
		}
	}
	if (bad > 0)
		r = EL_ECONFIG;
out:
	if (r != EL_OK) {
		template_set_free(ts);
		return r;
	}
	*out = ts;
	return EL_OK;
}

static const struct template *
set_find(const struct template_set *ts, const char *name)
{
	size_t i;

	for (i = 0; i < ts->n; i++)
		if (strcmp(ts->v[i]->name, name) == 0)
			return ts->v[i];
	return NULL;
}

enum el_err
template_set_kind(const struct template_set *ts, const char *name, enum template_kind *kind)
{
	const struct template *t = set_find(ts, name);

	if (t == NULL)
		return EL_ENOENT;
	*kind = t->kind;
	return EL_OK;
}

/* ---- rendering ---- */

struct render {
	const struct template *t;
	struct dbuf *out;
	json_t *stack[TEMPLATE_DEPTH_MAX + 1];
	size_t depth;
	struct el_why *w;
};

static enum el_err
too_big(struct render *r)
{
	return el_fail(r->w, EL_ETOOBIG, "template %s: output larger than %zu bytes",
	    r->t->name, r->out->max);
}

static enum el_err
emit(struct render *r, const void *p, size_t len)
{
	enum el_err e;

	if ((e = dbuf_add(r->out, p, len)) == EL_ETOOBIG)
		return too_big(r);
	return e;
}

/* Characters a value never carries into output: controls, C1, bidi overrides. */
static int
dropped(unsigned long cp)
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) ||
	    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

static enum el_err
emit_value(struct render *r, const char *s, size_t len, int raw)
{
	const unsigned char *u = (const unsigned char *)s;
	const char *rep;
	size_t i = 0, run = 0, k;
	unsigned long cp;
	enum el_err e;
	int html = r->t->kind == TEMPLATE_HTML && !raw;

	while (i < len) {
		k = utf8_next(u + i, len - i, &cp);
		rep = NULL;
		if (k == 0) {
			k = 1;
			rep = "";
		} else if ((cp == '\n' || cp == '\t') && !r->t->oneline) {
			/* kept */
		} else if (cp == '\n' || cp == '\t' || cp == 0x2028 || cp == 0x2029) {
			rep = " ";
		} else if (dropped(cp)) {
			rep = "";
		} else if (html) {
			switch (cp) {
			case '&': rep = "&amp;"; break;
			case '<': rep = "&lt;"; break;
			case '>': rep = "&gt;"; break;
			case '"': rep = "&quot;"; break;
			case '\'': rep = "&#39;"; break;
			}
		}
		if (rep == NULL) {
			i += k;
			continue;
		}
		if (i > run && (e = emit(r, s + run, i - run)) != EL_OK)
			return e;
		if (*rep != '\0' && (e = emit(r, rep, strlen(rep))) != EL_OK)
			return e;
		i += k;
		run = i;
	}
	if (i > run)
		return emit(r, s + run, i - run);
	return EL_OK;
}

/* Finds name: its first part innermost scope first, the rest inside it. */
static json_t *
lookup(struct render *r, const char *name)
{
	char seg[TEMPLATE_NAME_MAX + 1];
	const char *p = name, *dot;
	json_t *v = NULL;
	size_t i, n;

	if (strcmp(name, ".") == 0)
		return r->stack[r->depth - 1];
	dot = strchr(p, '.');
	n = dot != NULL ? (size_t)(dot - p) : strlen(p);
	memcpy(seg, p, n);
	seg[n] = '\0';
	for (i = r->depth; i > 0 && v == NULL; i--)
		if (json_is_object(r->stack[i - 1]))
			v = json_object_get(r->stack[i - 1], seg);
	while (v != NULL && dot != NULL) {
		p = dot + 1;
		dot = strchr(p, '.');
		n = dot != NULL ? (size_t)(dot - p) : strlen(p);
		memcpy(seg, p, n);
		seg[n] = '\0';
		v = json_is_object(v) ? json_object_get(v, seg) : NULL;
	}
	return v;
}

static int
truthy(const json_t *v)
{
	if (v == NULL)
		return 0;
	switch (json_typeof(v)) {
	case JSON_NULL:
	case JSON_FALSE:
		return 0;
	case JSON_TRUE:
	case JSON_OBJECT:
		return 1;
	case JSON_STRING:
		return json_string_length(v) > 0;
	case JSON_INTEGER:
		return json_integer_value(v) != 0;
	case JSON_REAL:
		return json_real_value(v) != 0.0;
	case JSON_ARRAY:
		return json_array_size(v) > 0;
	}
	return 0;
}

static enum el_err
render_var(struct render *r, const struct node *nd)
{
	json_t *v = lookup(r, nd->name);
	char num[64];

	if (v == NULL)
		return EL_OK;
	switch (json_typeof(v)) {
	case JSON_STRING:
		return emit_value(r, json_string_value(v), json_string_length(v),
		    nd->type == NODE_RAW);
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return emit(r, num, strlen(num));
	case JSON_REAL:
		snprintf(num, sizeof(num), "%.15g", json_real_value(v));
		return emit(r, num, strlen(num));
	case JSON_TRUE:
		return emit(r, "true", 4);
	case JSON_FALSE:
		return emit(r, "false", 5);
	case JSON_NULL:
		return EL_OK;
	case JSON_ARRAY:
	case JSON_OBJECT:
		break;
	}
	return el_fail(r->w, EL_EINVAL, "template %s: '%s' is a list or object, not a value",
	    r->t->name, nd->name);
}

/* A quoted line starts with the tag's indentation and ">", then " " unless it is empty. */
static enum el_err
quote_start(struct render *r, const struct node *nd, int empty)
{
	enum el_err e;

	if ((e = emit(r, r->t->src + nd->off - nd->len, nd->len)) != EL_OK)
		return e;
	return emit(r, empty ? ">" : "> ", empty ? 1 : 2);
}

/*
 * {{>name}}: every line of the value, empty ones included, becomes a quoted line, so
 * nothing a user typed (a blank line, then a fake link) reads as the broker's own text.
 * A CR before a line break goes with it; other control characters go as in any value.
 */
static enum el_err
render_quote(struct render *r, const struct node *nd)
{
	json_t *v = lookup(r, nd->name);
	const char *s, *end, *nl;
	size_t len;
	enum el_err e;

	if (v == NULL || json_is_null(v))
		return EL_OK;
	if (!json_is_string(v)) {
		/* A number or a boolean: one line. */
		if ((e = quote_start(r, nd, 0)) != EL_OK || (e = render_var(r, nd)) != EL_OK)
			return e;
		return emit(r, "\n", 1);
	}
	s = json_string_value(v);
	end = s + json_string_length(v);
	while (s < end) {
		nl = memchr(s, '\n', (size_t)(end - s));
		len = (size_t)((nl != NULL ? nl : end) - s);
		if (len > 0 && s[len - 1] == '\r')
			len--;
		if ((e = quote_start(r, nd, len == 0)) != EL_OK ||
		    (len > 0 && (e = emit_value(r, s, len, 0)) != EL_OK) ||
		    (e = emit(r, "\n", 1)) != EL_OK)
			return e;
		s = nl != NULL ? nl + 1 : end;
	}
	return EL_OK;
}

static enum el_err
render_range(struct render *r, size_t from, size_t to)
{
	const struct template *t = r->t;
	const struct node *nd;
	json_t *v;
	size_t i = from, k;
	enum el_err e;

	while (i < to) {
		nd = &t->nodes[i];
		switch (nd->type) {
		case NODE_TEXT:
			if ((e = emit(r, t->src + nd->off, nd->len)) != EL_OK)
				return e;
			i++;
			continue;
		case NODE_VAR:
		case NODE_RAW:
			if ((e = render_var(r, nd)) != EL_OK)
				return e;
			i++;
			continue;
		case NODE_QUOTE:
			if ((e = render_quote(r, nd)) != EL_OK)
				return e;
			i++;
			continue;
		case NODE_SECTION:
		case NODE_INVERTED:
			break;
		}
		v = lookup(r, nd->name);
		if (nd->type == NODE_INVERTED) {
			if (!truthy(v) && (e = render_range(r, i + 1, nd->end)) != EL_OK)
				return e;
		} else if (json_is_array(v)) {
			for (k = 0; k < json_array_size(v); k++) {
				r->stack[r->depth++] = json_array_get(v, k);
				e = render_range(r, i + 1, nd->end);
				r->depth--;
				if (e != EL_OK)
					return e;
			}
		} else if (truthy(v)) {
			r->stack[r->depth++] = v;
			e = render_range(r, i + 1, nd->end);
			r->depth--;
			if (e != EL_OK)
				return e;
		}
		i = nd->end;
	}
	return EL_OK;
}

enum el_err
template_render_one(const struct template *t, json_t *ctx, size_t max, char **out,
    struct el_why *w)
{
	struct render r;
	struct dbuf b;
	json_t *empty = NULL;
	enum el_err e;

	*out = NULL;
	dbuf_init(&b, max);
	memset(&r, 0, sizeof(r));
	r.t = t;
	r.out = &b;
	r.w = w;
	if (ctx == NULL) {
		if ((empty = json_object()) == NULL)
			return EL_ENOMEM;
		ctx = empty;
	}
	r.stack[r.depth++] = ctx;
	if ((e = render_range(&r, 0, t->n)) != EL_OK)
		goto out;
	if ((*out = dbuf_take(&b)) == NULL)
		e = EL_ENOMEM;
out:
	dbuf_free(&b);
	json_decref(empty);
	return e;
}

enum el_err
template_render(const struct template_set *ts, const char *name, json_t *ctx, size_t max,
    char **out, struct el_why *w)
{
	const struct template *t = set_find(ts, name);

	*out = NULL;
	if (t == NULL)
		return el_fail(w, EL_ENOENT, "no template named %s", name);
	return template_render_one(t, ctx, max, out, w);
}

void
template_mail_free(struct template_mail *m)
{
	free(m->subject);
	free(m->text);
	free(m->html);
	m->subject = m->text = m->html = NULL;
}

enum el_err
template_render_mail(const struct template_set *ts, const char *base, json_t *ctx,
    size_t max, struct template_mail *out, struct el_why *w)
{
	char name[128];
	const struct template *t;
	enum el_err e;

	memset(out, 0, sizeof(*out));
	if ((size_t)snprintf(name, sizeof(name), "%s.txt", base) >= sizeof(name) ||
	    (t = set_find(ts, name)) == NULL || t->subject == NULL)
		return el_fail(w, EL_ENOENT, "no mail template named %s", base);
	if ((e = template_render_one(t->subject, ctx, max, &out->subject, w)) != EL_OK)
		goto out;
	if ((e = template_render_one(t, ctx, max, &out->text, w)) != EL_OK)
		goto out;
	snprintf(name, sizeof(name), "%s.html", base);
	e = template_render(ts, name, ctx, max, &out->html, w);
out:
	if (e != EL_OK)
		template_mail_free(out);
	return e;
}
