/*
 * test_template.c — the template renderer and the shipped templates: escaping per kind,
 * sections, the output ceiling, and load-time diagnostics with file:line:col.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "elevate/diag.h"
#include "elevate/el.h"
#include "elevate/template.h"

static const char *
tdir(void)
{
	static const char *const cand[] = { "templates", "../templates", "../../templates" };
	const char *env = getenv("ELEVATE_TEMPLATES");
	char p[512];
	size_t i;

	if (env != NULL)
		return env;
	for (i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
		snprintf(p, sizeof(p), "%s/approve_page.html", cand[i]);
		if (access(p, R_OK) == 0)
			return cand[i];
	}
	fail_msg("templates directory not found; set ELEVATE_TEMPLATES");
	return NULL;
}

/* A context with every common variable and the ones the mails use. */
static json_t *
full_ctx(void)
{
	static const char *const str[] = {
		"request_id", "req_7xk2m9", "requester", "alice", "profile", "prod-readonly",
		"role_arn", "arn:aws:iam::111122223333:role/ProdReadOnly",
		"account", "111122223333", "region", "ap-northeast-1", "duration", "15m",
		"reason", "Investigate INC-42", "ticket", "INC-42", "recipient", "carol",
		"public_url", "https://elevate.example.com", "window", "15m from approval",
		"link", "https://elevate.example.com/approve/tok?a=1&b=2",
		"expires", "2026-11-22T03:56:00Z", "window_start", "2026-11-22T03:30:00Z",
		"window_end", "2026-11-22T03:45:00Z", "denied_by", "carol", "comment", "not now",
		"decided_at", "2026-11-22T03:29:00Z", "aws_code", "AccessDenied",
		"aws_message", "not authorized to perform sts:AssumeRole",
		"failed_at", "2026-11-22T03:30:01Z", "remaining", "5m",
		"ended_at", "2026-11-22T03:45:00Z", "revoked_by", "", "outcome", "approved",
		"decided_by", "dave", "error", "iam:PutRolePolicy throttled",
		"next_retry", "2026-11-22T03:46:00Z", "approver", "carol",
	};
	json_t *c = json_object();
	json_t *ap = json_pack("[{s:s, s:s, s:s, s:s}]", "approver", "carol", "decision",
	    "approve", "comment", "ok for INC-42", "decided_at", "2026-11-22T03:29:00Z");
	size_t i;

	assert_non_null(c);
	assert_non_null(ap);
	for (i = 0; i < sizeof(str) / sizeof(str[0]); i += 2)
		assert_int_equal(json_object_set_new(c, str[i], json_string(str[i + 1])), 0);
	json_object_set_new(c, "approvals_required", json_integer(1));
	json_object_set_new(c, "approvals_count", json_integer(1));
	json_object_set_new(c, "sessions_terminated", json_integer(2));
	json_object_set_new(c, "attempts", json_integer(3));
	json_object_set_new(c, "approvals", ap);
	return c;
}

static struct template_set *
load_shipped(void)
{
	struct template_set *ts = NULL;
	struct diags d;

	diags_init(&d);
	if (template_set_load(tdir(), &ts, &d) != EL_OK) {
		diags_print(&d, stderr);
		fail_msg("shipped templates do not load");
	}
	assert_int_equal(d.n, 0);
	diags_free(&d);
	return ts;
}

static void
test_shipped_load_and_render_all(void **state)
{
	static const char *const mails[] = { "approval_request", "approved", "denied", "lapsed",
	    "failed", "ending_soon", "ended", "decided_by_others", "revocation_failed" };
	struct template_set *ts = load_shipped();
	struct template_mail m;
	struct el_why w;
	json_t *c = full_ctx();
	enum template_kind k;
	char *out;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(mails) / sizeof(mails[0]); i++) {
		assert_int_equal(template_render_mail(ts, mails[i], c, TEMPLATE_OUT_MAX, &m, &w),
		    EL_OK);
		assert_true(strlen(m.subject) > 5);
		assert_null(strchr(m.subject, '\n'));
		assert_null(strstr(m.subject, "{{"));
		assert_null(strstr(m.text, "{{"));
		assert_null(strstr(m.html, "{{"));
		assert_null(strstr(m.text, "Subject:"));   /* the subject line is not in the body */
		assert_non_null(strstr(m.text, "prod-readonly"));
		assert_non_null(strstr(m.html, "<!DOCTYPE html>"));
		assert_non_null(strstr(m.subject, "req_7xk2m9"));
		template_mail_free(&m);
	}
	assert_int_equal(template_render(ts, "approve_page.html", c, TEMPLATE_OUT_MAX, &out, &w),
	    EL_OK);
	free(out);
	assert_int_equal(template_render(ts, "result_page.html", c, TEMPLATE_OUT_MAX, &out, &w),
	    EL_OK);
	free(out);
	assert_int_equal(template_render(ts, "elevate.css", NULL, TEMPLATE_OUT_MAX, &out, &w),
	    EL_OK);
	assert_non_null(strstr(out, ".card"));
	free(out);
	assert_int_equal(template_set_kind(ts, "elevate.css", &k), EL_OK);
	assert_int_equal(k, TEMPLATE_CSS);
	assert_int_equal(template_set_kind(ts, "approve_page.html", &k), EL_OK);
	assert_int_equal(k, TEMPLATE_HTML);
	assert_int_equal(template_render(ts, "nope.html", c, TEMPLATE_OUT_MAX, &out, &w),
	    EL_ENOENT);
	assert_int_equal(template_render_mail(ts, "nope", c, TEMPLATE_OUT_MAX, &m, &w), EL_ENOENT);
	json_decref(c);
	template_set_free(ts);
}

static void
test_approval_request_escaping(void **state)
{
	struct template_set *ts = load_shipped();
	struct template_mail m;
	struct el_why w;
	json_t *c = full_ctx();

	(void)state;
	json_object_set_new(c, "reason", json_string("<script>alert('x')</script> & \"q\""));
	json_object_set_new(c, "requester", json_string("bob\r\nBcc: evil@example.net"));
	assert_int_equal(template_render_mail(ts, "approval_request", c, TEMPLATE_OUT_MAX, &m, &w),
	    EL_OK);
	/* HTML: every special character becomes an entity. */
	assert_null(strstr(m.html, "<script>"));
	assert_non_null(strstr(m.html,
	    "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"));
	/* The link keeps working in HTML: & becomes &amp; inside the attribute. */
	assert_non_null(strstr(m.html, "href=\"https://elevate.example.com/approve/tok?a=1&amp;b=2\""));
	/* Text: the value as typed, the link untouched. */
	assert_non_null(strstr(m.text, "  > <script>alert('x')</script> & \"q\"\n"));
	assert_non_null(strstr(m.text, "https://elevate.example.com/approve/tok?a=1&b=2\n"));
	/* Subject: one line whatever the values hold; the CR is dropped, the LF a space. */
	assert_null(strchr(m.subject, '\r'));
	assert_null(strchr(m.subject, '\n'));
	assert_non_null(strstr(m.subject, "bob Bcc: evil@example.net"));
	/* Optional sections: ticket shown when set, its lines gone when not. */
	assert_non_null(strstr(m.text, ":\n  > INC-42\n\n"));
	template_mail_free(&m);
	json_object_del(c, "ticket");
	assert_int_equal(template_render_mail(ts, "approval_request", c, TEMPLATE_OUT_MAX, &m, &w),
	    EL_OK);
	assert_null(strstr(m.text, "Ticket"));
	assert_non_null(strstr(m.text, ":\n  > <script>"));
	assert_null(strstr(m.text, "\n\n\n"));      /* standalone section lines vanish whole */
	template_mail_free(&m);
	json_decref(c);
	template_set_free(ts);
}

/* Is every line of text that holds needle a quoted line ("> " after the indentation)? */
static void
assert_quoted_wherever(const char *text, const char *needle, const char *what)
{
	const char *hit = text, *ls;

	while ((hit = strstr(hit, needle)) != NULL) {
		for (ls = hit; ls > text && ls[-1] != '\n'; ls--)
			;
		while (*ls == ' ')
			ls++;
		if (strncmp(ls, "> ", 2) != 0)
			fail_msg("%s: '%s' on a line that is not quoted:\n%s", what, needle, text);
		hit++;
	}
}

/*
 * Issue 9: a reason of blank lines and a fake "open this link" line. In every mail each
 * line a user typed (reason, ticket, comments) is quoted, CR LF or not, and the mail's
 * own link or action comes before the first of them, in the text and the HTML part.
 */
static void
test_user_text_quoted_in_every_mail(void **state)
{
	static const struct {
		const char *mail;
		const char *action;   /* the mail's own link or action, if it has one */
		int reason, ticket, comment, approvals;
	} mails[] = {
		{ "approval_request", "https://elevate.example.com/approve/tok", 1, 1, 0, 0 },
		{ "approved", "elevate creds req_7xk2m9", 1, 1, 0, 1 },
		{ "denied", NULL, 1, 1, 1, 0 },
		{ "lapsed", NULL, 1, 1, 0, 0 },
		{ "decided_by_others", NULL, 1, 0, 0, 0 },
		{ "failed", NULL, 0, 0, 0, 0 },
		{ "ending_soon", NULL, 0, 0, 0, 0 },
		{ "ended", NULL, 0, 0, 0, 0 },
		{ "revocation_failed", NULL, 0, 0, 0, 0 },
	};
	static const char fake[] = "To approve or deny, open this link:";
	struct template_set *ts = load_shipped();
	struct template_mail m;
	struct el_why w;
	json_t *c = full_ctx();
	const char *first, *p, *quoted;
	size_t i;

	(void)state;
	json_object_set_new(c, "reason", json_string("Investigate INC-42\r\n\r\n\r\n"
	    "To approve or deny, open this link:\r\n\r\nhttp://evil.example/approve/AAAA\n"
	    "\n\ttabbed http://evil.example/2\r\n"));
	json_object_set_new(c, "ticket", json_string("INC-42 http://evil.example/t"));
	json_object_set_new(c, "comment", json_string("no\n\nGet credentials: "
	    "http://evil.example/c"));
	json_object_set_new(c, "approvals", json_pack("[{s:s, s:s, s:s, s:s}]", "approver",
	    "carol", "decision", "approve", "comment", "ok\n\nhttp://evil.example/a",
	    "decided_at", "2026-11-22T03:29:00Z"));
	for (i = 0; i < sizeof(mails) / sizeof(mails[0]); i++) {
		assert_int_equal(template_render_mail(ts, mails[i].mail, c, TEMPLATE_OUT_MAX,
		    &m, &w), EL_OK);
		assert_quoted_wherever(m.text, "evil", mails[i].mail);
		assert_quoted_wherever(m.text, "INC-42", mails[i].mail);
		/* Every line of the reason, the empty ones too; the CRs gone. */
		if (mails[i].reason)
			assert_non_null(strstr(m.text, "\n  > Investigate INC-42\n  >\n  >\n"
			    "  > To approve or deny, open this link:\n  >\n"
			    "  > http://evil.example/approve/AAAA\n  >\n"
			    "  > \ttabbed http://evil.example/2\n\n"));
		else
			assert_null(strstr(m.text, "evil.example/approve"));
		if (mails[i].ticket)
			assert_non_null(strstr(m.text, "\n  > INC-42 http://evil.example/t\n"));
		if (mails[i].comment)
			assert_non_null(strstr(m.text, "\n  > no\n  >\n"
			    "  > Get credentials: http://evil.example/c\n"));
		if (mails[i].approvals)
			assert_non_null(strstr(m.text, "\n  - carol at 2026-11-22T03:29:00Z\n"
			    "    > ok\n    >\n    > http://evil.example/a\n"));
		assert_null(strchr(m.text, '\r'));
		/* The mail's own words are never quoted; its link or action comes first. */
		p = strstr(m.text, fake);
		quoted = strstr(m.text, "  > To approve");
		if (strcmp(mails[i].mail, "approval_request") == 0) {
			assert_true(p != NULL && p > m.text && p[-1] == '\n');
			p = strstr(p + 1, fake);
		}
		assert_ptr_equal(p, mails[i].reason ? quoted + 4 : NULL);
		if (mails[i].action != NULL) {
			first = strstr(m.text, "evil");
			p = strstr(m.text, mails[i].action);
			assert_true(p != NULL && first != NULL && p < first);
			first = strstr(m.html, "evil");
			p = strstr(m.html, mails[i].action);
			assert_true(p != NULL && first != NULL && p < first);
		}
		template_mail_free(&m);
	}
	json_decref(c);
	template_set_free(ts);
}

static void
test_approve_page(void **state)
{
	struct template_set *ts = load_shipped();
	struct el_why w;
	json_t *c = full_ctx();
	char *out;

	(void)state;
	json_object_set_new(c, "reason", json_string("<b>hi</b>"));
	assert_int_equal(template_render(ts, "approve_page.html", c, TEMPLATE_OUT_MAX, &out, &w),
	    EL_OK);
	assert_non_null(strstr(out, "<form method=\"post\""));
	assert_null(strstr(out, "action="));   /* posts back to the same URL */
	assert_non_null(strstr(out, "<textarea id=\"comment\" name=\"comment\" maxlength=\"1000\""));
	assert_non_null(strstr(out, "name=\"decision\" value=\"approve\""));
	assert_non_null(strstr(out, "name=\"decision\" value=\"deny\""));
	assert_non_null(strstr(out, "<link rel=\"stylesheet\" href=\"/static/elevate.css\">"));
	assert_non_null(strstr(out, "name=\"viewport\""));
	/* Strict CSP: no script, no inline style of any kind. */
	assert_null(strstr(out, "<script"));
	assert_null(strstr(out, "<style"));
	assert_null(strstr(out, "style="));
	assert_null(strstr(out, "<b>hi</b>"));
	assert_non_null(strstr(out, "&lt;b&gt;hi&lt;/b&gt;"));
	assert_non_null(strstr(out, "Approvals: 1 of 1"));
	assert_non_null(strstr(out, "ok for INC-42"));
	assert_null(strstr(out, "No approvals yet."));
	free(out);
	json_object_set_new(c, "approvals", json_array());
	json_object_set_new(c, "approvals_count", json_integer(0));
	assert_int_equal(template_render(ts, "approve_page.html", c, TEMPLATE_OUT_MAX, &out, &w),
	    EL_OK);
	assert_non_null(strstr(out, "No approvals yet."));
	assert_null(strstr(out, "<ul class=\"approvals\">"));
	free(out);
	json_decref(c);
	template_set_free(ts);
}

static void
test_result_page(void **state)
{
	struct template_set *ts = load_shipped();
	struct el_why w;
	json_t *c;
	char *out;

	(void)state;
	c = json_pack("{s:s, s:s, s:b}", "title", "Invalid link",
	    "message", "This link is not valid.", "refused", 1);
	assert_int_equal(template_render(ts, "result_page.html", c, TEMPLATE_OUT_MAX, &out, &w),
	    EL_OK);
	assert_non_null(strstr(out, "<h1>Invalid link</h1>"));
	assert_non_null(strstr(out, "This link is not valid."));
	assert_non_null(strstr(out, "status-refused"));
	assert_null(strstr(out, "status-approved"));
	assert_null(strstr(out, "<dl"));          /* no request known, no details */
	assert_null(strstr(out, "style="));
	free(out);
	json_decref(c);
	c = json_pack("{s:s, s:s, s:b, s:s, s:s}", "title", "Approved", "message",
	    "Your approval was recorded.", "approved", 1, "request_id", "req_1", "profile", "p");
	assert_int_equal(template_render(ts, "result_page.html", c, TEMPLATE_OUT_MAX, &out, &w),
	    EL_OK);
	assert_non_null(strstr(out, "status-approved"));
	assert_non_null(strstr(out, "req_1"));
	assert_null(strstr(out, "status-denied"));
	free(out);
	json_decref(c);
	template_set_free(ts);
}

/* Compiles with every name allowed and renders; returns the output (caller frees). */
static char *
render_str(const char *src, enum template_kind kind, const char *json)
{
	struct template *t = NULL;
	struct diags d;
	struct el_why w;
	json_error_t je;
	json_t *c = json_loads(json, 0, &je);
	char *out = NULL;

	assert_non_null(c);
	diags_init(&d);
	if (template_compile("t", src, strlen(src), kind, NULL, &t, &d) != EL_OK) {
		diags_print(&d, stderr);
		fail_msg("compile failed: %s", src);
	}
	assert_int_equal(template_render_one(t, c, 4096, &out, &w), EL_OK);
	template_free(t);
	json_decref(c);
	diags_free(&d);
	return out;
}

static void
expect(const char *src, enum template_kind kind, const char *json, const char *want)
{
	char *out = render_str(src, kind, json);

	assert_string_equal(out, want);
	free(out);
}

static void
test_mustache_semantics(void **state)
{
	(void)state;
	expect("Hi {{name}}!", TEMPLATE_TEXT, "{\"name\":\"Ann\"}", "Hi Ann!");
	expect("[{{missing}}]", TEMPLATE_TEXT, "{}", "[]");
	expect("{{n}} {{t}} {{f}} {{z}} {{r}}", TEMPLATE_TEXT,
	    "{\"n\":42,\"t\":true,\"f\":false,\"z\":null,\"r\":1.5}", "42 true false  1.5");
	expect("{{a.b.c}}", TEMPLATE_TEXT, "{\"a\":{\"b\":{\"c\":\"deep\"}}}", "deep");
	expect("{{a.x}}", TEMPLATE_TEXT, "{\"a\":\"str\"}", "");
	/* Lists: item first, then outer scope. */
	expect("{{#l}}<{{who}}@{{site}}>{{/l}}", TEMPLATE_TEXT,
	    "{\"site\":\"s\",\"l\":[{\"who\":\"a\"},{\"who\":\"b\",\"site\":\"own\"}]}",
	    "<a@s><b@own>");
	expect("{{#l}}{{.}},{{/l}}", TEMPLATE_TEXT, "{\"l\":[\"x\",\"y\",3]}", "x,y,3,");
	expect("{{#l}}X{{/l}}{{^l}}none{{/l}}", TEMPLATE_TEXT, "{\"l\":[]}", "none");
	/* Truthiness. */
	expect("{{#f}}yes{{/f}}{{^f}}no{{/f}}", TEMPLATE_TEXT, "{\"f\":true}", "yes");
	expect("{{#f}}yes{{/f}}{{^f}}no{{/f}}", TEMPLATE_TEXT, "{\"f\":false}", "no");
	expect("{{#f}}yes{{/f}}{{^f}}no{{/f}}", TEMPLATE_TEXT, "{\"f\":\"\"}", "no");
	expect("{{#f}}yes{{/f}}{{^f}}no{{/f}}", TEMPLATE_TEXT, "{\"f\":0}", "no");
	expect("{{#f}}yes{{/f}}{{^f}}no{{/f}}", TEMPLATE_TEXT, "{}", "no");
	expect("{{#o}}{{k}}{{/o}}", TEMPLATE_TEXT, "{\"o\":{\"k\":\"v\"}}", "v");
	expect("{{#s}}[{{s}}]{{/s}}", TEMPLATE_TEXT, "{\"s\":\"val\"}", "[val]");
	/* Standalone block tags take their line; inline ones do not. */
	expect("a\n{{#f}}\nb\n{{/f}}\nc\n", TEMPLATE_TEXT, "{\"f\":true}", "a\nb\nc\n");
	expect("a\n  {{#f}}  \nb\n{{/f}}\nc\n", TEMPLATE_TEXT, "{\"f\":false}", "a\nc\n");
	expect("a {{#f}}b{{/f}} c\n", TEMPLATE_TEXT, "{\"f\":true}", "a b c\n");
	expect("x{{! a comment }}y", TEMPLATE_TEXT, "{}", "xy");
	/* Escaping per kind; raw leaves HTML characters alone. */
	expect("{{v}}|{{{v}}}|{{&v}}", TEMPLATE_HTML, "{\"v\":\"<a href='x'>&\\\"</a>\"}",
	    "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;|<a href='x'>&\"</a>|<a href='x'>&\"</a>");
	expect("{{v}}", TEMPLATE_TEXT, "{\"v\":\"<&>\\\"'\"}", "<&>\"'");
	/* Control characters, C1 and bidi overrides go; newline and tab stay. */
	expect("{{v}}", TEMPLATE_TEXT,
	    "{\"v\":\"a\\u0001b\\u001bc\\u007fd\\u0085e\\u202Ef\\u2066g\\r\\n\\th\"}",
	    "abcdefg\n\th");
	expect("{{v}}", TEMPLATE_HTML, "{\"v\":\"\\u00e9t\\u00e9 \\u65e5\\u672c\"}",
	    "\xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac");
}

static void
test_quoted_block(void **state)
{
	(void)state;
	/* Every line quoted with the tag's indentation, blank ones too: none ends the block. */
	expect("a\n  {{>v}}\nb\n", TEMPLATE_TEXT, "{\"v\":\"one\\n\\n\\ntwo\"}",
	    "a\n  > one\n  >\n  >\n  > two\nb\n");
	expect("a\n\t{{> v }}  \r\nb", TEMPLATE_TEXT, "{\"v\":\"x\"}", "a\n\t> x\nb");
	/* CR LF is a line break; a lone CR and other controls go; U+2028 is a space. */
	expect("{{>v}}\n", TEMPLATE_TEXT,
	    "{\"v\":\"x\\r\\n\\r\\ny\\rz\\u0085\\u2028w\\u202e\\r\\n\"}",
	    "> x\n>\n> yz w\n");
	/* A final line break ends the last line; it adds no empty one. */
	expect("{{>v}}\n.", TEMPLATE_TEXT, "{\"v\":\"x\\n\"}", "> x\n.");
	expect("{{>v}}\n.", TEMPLATE_TEXT, "{\"v\":\"\\n\"}", ">\n.");
	/* Nothing for nothing; a number is one line. */
	expect("a\n{{>v}}\nb", TEMPLATE_TEXT, "{}", "a\nb");
	expect("a\n{{>v}}\nb", TEMPLATE_TEXT, "{\"v\":\"\"}", "a\nb");
	expect("a\n{{>v}}\nb", TEMPLATE_TEXT, "{\"v\":null}", "a\nb");
	expect("{{>v}}", TEMPLATE_TEXT, "{\"v\":7}", "> 7\n");
	/* In a list, with the item's own field. */
	expect("{{#l}}\n- {{n}}\n{{#c}}\n    {{>c}}\n{{/c}}\n{{/l}}\n", TEMPLATE_TEXT,
	    "{\"l\":[{\"n\":\"a\",\"c\":\"1\\n\\n2\"},{\"n\":\"b\"}]}",
	    "- a\n    > 1\n    >\n    > 2\n- b\n");
	/* The fake link of issue 9 stays inside the quote. */
	expect("Reason:\n  {{>r}}\n\nTo approve, open:\n{{{l}}}\n", TEMPLATE_TEXT,
	    "{\"r\":\"x\\n\\nTo approve, open:\\nhttp://evil\",\"l\":\"https://real\"}",
	    "Reason:\n  > x\n  >\n  > To approve, open:\n  > http://evil\n\n"
	    "To approve, open:\nhttps://real\n");
}

static void
test_render_errors(void **state)
{
	struct template *t = NULL;
	struct el_why w;
	json_t *c;
	char *out = NULL;
	char big[200];

	(void)state;
	/* Output ceiling. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(template_compile("t", "{{#l}}{{v}}{{/l}}", 17, TEMPLATE_TEXT, NULL, &t,
	    NULL), EL_OK);
	c = json_pack("{s:[{s:s},{s:s}]}", "l", "v", big, "v", big);
	assert_int_equal(template_render_one(t, c, 300, &out, &w), EL_ETOOBIG);
	assert_null(out);
	assert_non_null(strstr(w.msg, "larger than 300 bytes"));
	assert_int_equal(template_render_one(t, c, 400, &out, &w), EL_OK);
	assert_int_equal(strlen(out), 2 * strlen(big));
	free(out);
	json_decref(c);
	template_free(t);
	/* A list where a value belongs is the caller's bug, reported, not printed. */
	assert_int_equal(template_compile("t", "{{v}}", 5, TEMPLATE_TEXT, NULL, &t, NULL), EL_OK);
	c = json_pack("{s:[i]}", "v", 1);
	assert_int_equal(template_render_one(t, c, 300, &out, &w), EL_EINVAL);
	assert_non_null(strstr(w.msg, "'v'"));
	json_decref(c);
	template_free(t);
}

/* Compiles src with an allowed list; returns the diags (caller frees) and asserts failure. */
static void
compile_bad_as(enum template_kind kind, const char *src, const char *allowed,
    struct diags *d)
{
	struct template *t = NULL;

	diags_init(d);
	assert_int_equal(template_compile(kind == TEMPLATE_HTML ? "bad.html" : "bad.txt", src,
	    strlen(src), kind, allowed, &t, d), EL_ECONFIG);
	assert_null(t);
	assert_true(d->n >= 1);
}

static void
compile_bad(const char *src, const char *allowed, struct diags *d)
{
	compile_bad_as(TEMPLATE_HTML, src, allowed, d);
}

static void
assert_diag(const struct diags *d, size_t i, int line, int col, const char *needle)
{
	assert_true(i < d->n);
	if (d->v[i].line != line || d->v[i].column != col || strstr(d->v[i].msg, needle) == NULL)
		fail_msg("diag %zu: got %d:%d '%s', want %d:%d '%s'", i, d->v[i].line,
		    d->v[i].column, d->v[i].msg, line, col, needle);
	assert_true(strcmp(d->v[i].file, "bad.html") == 0 || strcmp(d->v[i].file, "bad.txt") == 0);
}

static void
test_compile_diagnostics(void **state)
{
	struct diags d;
	const char *allowed = "a b l l.x link!";

	(void)state;
	compile_bad("ok {{a}}\n  {{zz}}\n", allowed, &d);
	assert_int_equal(d.n, 1);
	assert_diag(&d, 0, 2, 3, "unknown variable 'zz'");
	diags_free(&d);

	compile_bad("{{#a}}\nx\n", allowed, &d);
	assert_diag(&d, 0, 1, 1, "{{#a}} is never closed");
	diags_free(&d);

	compile_bad("x {{/a}}", allowed, &d);
	assert_diag(&d, 0, 1, 3, "closes no open section");
	diags_free(&d);

	compile_bad("{{#a}}\n\n   {{/b}}", allowed, &d);
	assert_diag(&d, 0, 3, 4, "{{/b}} does not close {{#a}} opened at 1:1");
	diags_free(&d);

	/* Raw output only for names marked "!" */
	compile_bad("{{{link}}} {{{a}}}", allowed, &d);
	assert_int_equal(d.n, 1);
	assert_diag(&d, 0, 1, 12, "'a' may not be inserted raw");
	diags_free(&d);

	/* Item fields: x is known inside l, not outside. */
	compile_bad("{{#l}}{{x}}{{/l}}{{x}}", allowed, &d);
	assert_int_equal(d.n, 1);
	assert_diag(&d, 0, 1, 18, "unknown variable 'x'");
	diags_free(&d);

	compile_bad("a\n{{b", allowed, &d);
	assert_diag(&d, 0, 2, 1, "never closed by '}}'");
	diags_free(&d);

	compile_bad("{{a b}} {{}} {{>p}} {{=<% %>=}}", allowed, &d);
	assert_int_equal(d.n, 4);
	assert_diag(&d, 0, 1, 1, "invalid tag name");
	assert_diag(&d, 1, 1, 9, "empty tag name");
	assert_diag(&d, 2, 1, 14, "partials");
	assert_diag(&d, 3, 1, 21, "delimiters");
	diags_free(&d);

	/* Text a user typed ("r>"): only quoted, alone on its line, in a text body. */
	compile_bad_as(TEMPLATE_TEXT, "a {{r}}\n{{#r}}\n{{.}}\n{{/r}}\nb {{>r}}\n{{{r}}}\n",
	    "r> l l.c>", &d);
	assert_int_equal(d.n, 4);
	assert_diag(&d, 0, 1, 3, "'r' is text a user typed: quote it with {{>r}}");
	assert_diag(&d, 1, 3, 1, "'.' is text a user typed");
	assert_diag(&d, 2, 5, 3, "{{>r}} must stand alone on its line");
	assert_diag(&d, 3, 6, 1, "'r' may not be inserted raw");
	diags_free(&d);
	compile_bad_as(TEMPLATE_TEXT, "{{#l}}\n{{c}}\n{{/l}}\n", "r> l l.c>", &d);
	assert_int_equal(d.n, 1);
	assert_diag(&d, 0, 2, 1, "'c' is text a user typed");
	diags_free(&d);
	compile_bad("<p>{{r}}</p>\n  {{>r}}\n", "r> l l.c>", &d);
	assert_int_equal(d.n, 1);
	assert_diag(&d, 0, 2, 3, "{{>r}} quotes lines: only in the body of a text template");
	diags_free(&d);

	compile_bad("ok\nbad \xff byte", allowed, &d);
	assert_diag(&d, 0, 2, 5, "UTF-8");
	diags_free(&d);

	/* All problems are reported, not just the first. */
	compile_bad("{{q1}}\n{{q2}}\n{{/q3}}\n", allowed, &d);
	assert_int_equal(d.n, 3);
	diags_free(&d);
}

/* Copies the shipped templates into a fresh directory the test can break. */
static void
copy_shipped(char *dir, size_t len)
{
	char src[1024], dst[1024];
	struct dirent *e;
	struct el_why w;
	DIR *dp;
	char *buf;
	size_t n;

	snprintf(dir, len, "/tmp/el_test_tpl_XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_non_null(dp = opendir(tdir()));
	while ((e = readdir(dp)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(src, sizeof(src), "%s/%s", tdir(), e->d_name);
		snprintf(dst, sizeof(dst), "%s/%s", dir, e->d_name);
		assert_int_equal(el_read_file(src, 1 << 20, &buf, &n, &w), EL_OK);
		assert_int_equal(el_write_file(dst, buf, n, 0644, &w), EL_OK);
		free(buf);
	}
	closedir(dp);
}

static void
put(const char *dir, const char *name, const char *content, size_t len)
{
	char p[1024];
	struct el_why w;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(el_write_file(p, content, len, 0644, &w), EL_OK);
}

static void
rm_dir(const char *dir)
{
	char p[1024];
	struct dirent *e;
	DIR *dp = opendir(dir);

	if (dp == NULL)
		return;
	while ((e = readdir(dp)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(dp);
	rmdir(dir);
}

static int
has_diag(const struct diags *d, const char *file_suffix, int line, int col, const char *needle)
{
	size_t i, fl, sl = strlen(file_suffix);

	for (i = 0; i < d->n; i++) {
		fl = d->v[i].file ? strlen(d->v[i].file) : 0;
		if (fl >= sl && strcmp(d->v[i].file + fl - sl, file_suffix) == 0 &&
		    d->v[i].line == line && d->v[i].column == col &&
		    strstr(d->v[i].msg, needle) != NULL)
			return 1;
	}
	return 0;
}

static void
test_set_load_reports_every_problem(void **state)
{
	char dir[64], p[1024];
	struct template_set *ts = NULL;
	struct diags d;
	char *huge;
	FILE *f;

	(void)state;
	copy_shipped(dir, sizeof(dir));
	/* 1: a variable approval mails do not have, on line 3 column 7. */
	put(dir, "approval_request.txt", "Subject: hi {{profile}}\n\nline\nabc   {{aws_code}}\n", 48);
	/* 2: a raw value that is not the broker's own. */
	put(dir, "denied.html", "<p>{{{comment}}}</p>\n", 21);
	/* 3: no Subject line. */
	put(dir, "lapsed.txt", "Hello {{requester}}\n", 20);
	/* 4: over the size ceiling. */
	huge = malloc(TEMPLATE_FILE_MAX + 2);
	assert_non_null(huge);
	memset(huge, 'a', TEMPLATE_FILE_MAX + 1);
	put(dir, "approve_page.html", huge, TEMPLATE_FILE_MAX + 1);
	free(huge);
	/* 5: missing. */
	snprintf(p, sizeof(p), "%s/ended.html", dir);
	assert_int_equal(unlink(p), 0);
	/* 6: the stylesheet takes no variables; 7: an unbalanced section in a page. */
	put(dir, "elevate.css", "a { color: red }\n{{x}}\n", 22);
	put(dir, "result_page.html", "<h1>{{title}}</h1>\n{{#approved}}\nok\n", 36);
	/* 8: a quoted block in a subject (one line), 9: a reason shown unquoted in a body;
	 * a reason in a subject is fine. */
	put(dir, "approved.txt", "Subject: {{>reason}}\n\nok\n", 25);
	put(dir, "denied.txt", "Subject: {{reason}}\n\nok\n{{reason}}\n", 34);

	diags_init(&d);
	assert_int_equal(template_set_load(dir, &ts, &d), EL_ECONFIG);
	assert_null(ts);
	f = fopen("/dev/null", "w");
	diags_print(&d, f);
	fclose(f);
	assert_int_equal(d.n, 9);
	assert_true(has_diag(&d, "/approval_request.txt", 4, 7, "unknown variable 'aws_code'"));
	assert_true(has_diag(&d, "/denied.html", 1, 4, "'comment' may not be inserted raw"));
	assert_true(has_diag(&d, "/lapsed.txt", 1, 1, "Subject"));
	assert_true(has_diag(&d, "/approve_page.html", 0, 0, "larger than 65536 bytes"));
	assert_true(has_diag(&d, "/ended.html", 0, 0, "missing template"));
	assert_true(has_diag(&d, "/elevate.css", 2, 1, "unknown variable 'x'"));
	assert_true(has_diag(&d, "/result_page.html", 2, 1, "{{#approved}} is never closed"));
	assert_true(has_diag(&d, "/approved.txt", 1, 10, "only in the body of a text template"));
	assert_true(has_diag(&d, "/denied.txt", 4, 1, "'reason' is text a user typed"));
	diags_free(&d);
	rm_dir(dir);
}

static void
test_kind_of(void **state)
{
	enum template_kind k;

	(void)state;
	assert_int_equal(template_kind_of("a.html", &k), EL_OK);
	assert_int_equal(k, TEMPLATE_HTML);
	assert_int_equal(template_kind_of("a.txt", &k), EL_OK);
	assert_int_equal(k, TEMPLATE_TEXT);
	assert_int_equal(template_kind_of("x/elevate.css", &k), EL_OK);
	assert_int_equal(k, TEMPLATE_CSS);
	assert_int_equal(template_kind_of("a.htm", &k), EL_EINVAL);
	assert_int_equal(template_kind_of("noext", &k), EL_EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped_load_and_render_all),
		cmocka_unit_test(test_approval_request_escaping),
		cmocka_unit_test(test_user_text_quoted_in_every_mail),
		cmocka_unit_test(test_approve_page),
		cmocka_unit_test(test_result_page),
		cmocka_unit_test(test_mustache_semantics),
		cmocka_unit_test(test_quoted_block),
		cmocka_unit_test(test_render_errors),
		cmocka_unit_test(test_compile_diagnostics),
		cmocka_unit_test(test_set_load_reports_every_problem),
		cmocka_unit_test(test_kind_of),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
