/*
 * fuzz_template.c — libFuzzer harness for template_compile (the mustache subset of the
 * mail and page templates an operator may edit) and template_render_one. The input is
 * one template, compiled as HTML and as text (quoted blocks) with every name allowed (raw
 * included), then rendered from a small fixed context with a 64 KiB output ceiling. Besides "no crash, no UB, no leak":
 * EL_OK from the compiler means no diagnostics, and a rendered page fits the ceiling.
 * Build: see README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "elevate/diag.h"
#include "elevate/el.h"
#include "elevate/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX (64 * 1024)

static json_t *ctx;

static void
one(const uint8_t *data, size_t size, enum template_kind kind)
{
	struct template *t = NULL;
	struct el_why w = {{0}};
	struct diags d;
	enum el_err e;
	char *out = NULL;

	diags_init(&d);
	e = template_compile(kind == TEMPLATE_HTML ? "fuzz.html" : "fuzz.txt",
	    (const char *)data, size, kind, NULL, &t, &d);
	if (e == EL_OK) {
		if (t == NULL || diags_count(&d) != 0)
			abort();
		e = template_render_one(t, ctx, OUT_MAX, &out, &w);
		if (e == EL_OK) {
			if (out == NULL || strlen(out) > OUT_MAX)
				abort();
			free(out);
		} else if (w.msg[0] == '\0')
			abort();
		/* No context at all: every name is missing. */
		if (template_render_one(t, NULL, OUT_MAX, &out, &w) == EL_OK)
			free(out);
		template_free(t);
	} else if (e == EL_ECONFIG && diags_count(&d) == 0)
		abort();
	diags_free(&d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ctx == NULL) {
		/* Every value type, a list of objects, a list of strings, nesting, and text
		 * that must be escaped or stripped (markup, a bidi override, a C1 control). */
		ctx = json_pack("{s:s, s:s, s:s, s:i, s:f, s:b, s:b, s:n, s:s,"
		    " s:[{s:s, s:s}, {s:s, s:s}], s:[s, s, s], s:[], s:{s:s, s:{s:i}}}",
		    "name", "alice", "reason", "<script>alert('x&y')</script>\"",
		    "link", "https://elevate.example/approve?t=abc&x=1",
		    "count", 3, "ratio", 0.5, "yes", 1, "no", 0, "nothing",
		    "bidi", "a\xe2\x80\xae" "b\xc2\x85" "c\x01" "d\r\n\ne\n",
		    "approvals", "approver", "carol", "decision", "approve",
		    "approver", "dave", "decision", "deny",
		    "targets", "i-1", "i-2", "<i-3>",
		    "empty",
		    "req", "id", "req_1", "grant", "secs", 3600);
		if (ctx == NULL)
			abort();
	}
	if (size > TEMPLATE_FILE_MAX)
		return 0;
	one(data, size, TEMPLATE_HTML);
	one(data, size, TEMPLATE_TEXT);
	return 0;
}
