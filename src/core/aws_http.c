/*
 * aws_http.c — owns the wire to AWS: the client (region, endpoints, timeouts, a pool
 * of curl handles), SigV4-signed calls with retry and jittered backoff, the Query
 * protocol's form encoding, the libxml2 helpers, and the parsing of AWS error
 * documents (Query/XML and JSON 1.1). Service files build bodies and parse answers.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "elevate/aws.h"
#include "elevate/aws_internal.h"
#include "elevate/el.h"
#include "elevate/log.h"
#include "elevate/sigv4.h"

#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS  5000

static const char *const svc_names[AWS_SVC__MAX] = {"sts", "iam", "ssm", "ec2", "s3",
	"signin"};
static const char *const svc_env[AWS_SVC__MAX] = {
	"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_SSM",
	"AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SIGNIN",
};

static pthread_once_t aws_once = PTHREAD_ONCE_INIT;

static void
aws_global_init(void)
{
	/* libxml2 and curl must be initialised once before threads use them. */
	xmlInitParser();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (sodium_init() < 0)
		fatalx("aws: libsodium failed to initialise");
}

const char *
aws_svc_name(enum aws_svc svc)
{
	if ((int)svc < 0 || svc >= AWS_SVC__MAX)
		return "?";
	return svc_names[svc];
}

void
aws_error_set(struct aws_error *err, int status, const char *request_id, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
	err->http_status = status;
	if (request_id != NULL)
		el_strlcpy(err->request_id, request_id, sizeof(err->request_id));
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------- encoding */

int
aws_name_ok(const char *s, size_t min, size_t max)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; *s != '\0'; s++, n++)
		if (!isalnum((unsigned char)*s) || (unsigned char)*s >= 0x80)
			if (strchr("_+=,.@-", *s) == NULL)
				return 0;
	return n >= min && n <= max;
}

enum el_err
aws_form_add(struct dbuf *b, const char *key, const char *value)
{
	enum el_err r;

	if (b->len > 0 && (r = dbuf_add(b, "&", 1)) != EL_OK)
		return r;
	if ((r = sigv4_uri_encode(b, key, strlen(key), 0)) != EL_OK)
		return r;
	if ((r = dbuf_add(b, "=", 1)) != EL_OK)
		return r;
	return sigv4_uri_encode(b, value, strlen(value), 0);
}

/* ---------------------------------------------------------------- XML */

enum el_err
aws_xml_read(const char *buf, size_t len, xmlDocPtr *doc, struct el_why *w)
{
	const xmlError *xe;
	xmlDocPtr d;
	char why[160];
	size_t i;

	*doc = NULL;
	pthread_once(&aws_once, aws_global_init);
	if (len > AWS_MAX_RESPONSE)
		return el_fail(w, EL_ETOOBIG, "XML document of %zu bytes is over the %d byte limit",
		    len, AWS_MAX_RESPONSE);
	if (buf == NULL || len == 0)
		return el_fail(w, EL_EPARSE, "empty body where XML was expected");
	/*
	 * No network, no DTD loading, no entity substitution (XML_PARSE_NOENT stays off),
	 * quiet: a hostile or broken endpoint must not make us fetch or expand anything.
	 */
	d = xmlReadMemory(buf, (int)len, "aws.xml", NULL,
	    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (d == NULL) {
		why[0] = '\0';
		if ((xe = xmlGetLastError()) != NULL && xe->message != NULL) {
			el_strlcpy(why, xe->message, sizeof(why));
			for (i = 0; why[i] != '\0'; i++)
				if (why[i] == '\n')
					why[i] = ' ';
		}
		xmlResetLastError();
		return el_fail(w, EL_EPARSE, "not well-formed XML%s%s", why[0] ? ": " : "", why);
	}
	if (d->intSubset != NULL || d->extSubset != NULL) {
		xmlFreeDoc(d);
		return el_fail(w, EL_EPARSE, "XML with a DOCTYPE (AWS never sends one)");
	}
	if (xmlDocGetRootElement(d) == NULL) {
		xmlFreeDoc(d);
		return el_fail(w, EL_EPARSE, "XML without a root element");
	}
	*doc = d;
	return EL_OK;
}

static void
xml_wipe(xmlDocPtr doc, xmlNodePtr n)
{
	for (; n != NULL; n = n->next) {
		if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) &&
		    n->content != NULL && (doc->dict == NULL ||
		    !xmlDictOwns(doc->dict, n->content)))
			sodium_memzero(n->content, strlen((const char *)n->content));
		if (n->type == XML_ELEMENT_NODE)
			xml_wipe(doc, n->children);
	}
}

void
aws_xml_free(xmlDocPtr doc)
{
	if (doc == NULL)
		return;
	xml_wipe(doc, doc->children);
	xmlFreeDoc(doc);
}

xmlNodePtr
aws_xml_child(xmlNodePtr parent, const char *name)
{
	xmlNodePtr n;

	if (parent == NULL)
		return NULL;
	for (n = parent->children; n != NULL; n = n->next)
		if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
			return n;
	return NULL;
}

xmlNodePtr
aws_xml_path(xmlNodePtr parent, ...)
{
	va_list ap;
	const char *name;
	xmlNodePtr n = parent;

	va_start(ap, parent);
	while (n != NULL && (name = va_arg(ap, const char *)) != NULL)
		n = aws_xml_child(n, name);
	va_end(ap);
	return n;
}

char *
aws_xml_text(xmlNodePtr node)
{
	struct dbuf b;
	xmlNodePtr n;
	size_t s, e;
	char *out;

	if (node == NULL)
		return NULL;
	dbuf_init(&b, AWS_MAX_RESPONSE);
	/* Only text and CDATA: an entity reference is never expanded. */
	for (n = node->children; n != NULL; n = n->next) {
		if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) &&
		    n->content != NULL &&
		    dbuf_adds(&b, (const char *)n->content) != EL_OK) {
			dbuf_free_secret(&b);
			return NULL;
		}
	}
	if (b.p == NULL)
		return strdup("");
	for (s = 0; s < b.len && isspace((unsigned char)b.p[s]); s++)
		;
	for (e = b.len; e > s && isspace((unsigned char)b.p[e - 1]); e--)
		;
	out = strndup(b.p + s, e - s);
	dbuf_free_secret(&b);
	return out;
}

enum el_err
aws_xml_copy(xmlNodePtr node, const char *what, char *buf, size_t len, struct el_why *w)
{
	char *t;
	size_t n;

	if (node == NULL)
		return el_fail(w, EL_EPARSE, "response has no %s", what);
	if ((t = aws_xml_text(node)) == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory reading %s", what);
	if (*t == '\0') {
		free(t);
		return el_fail(w, EL_EPARSE, "response has an empty %s", what);
	}
	n = el_strlcpy(buf, t, len);
	free(t);
	if (n >= len)
		return el_fail(w, EL_ETOOBIG, "%s of %zu bytes is too long (max %zu)", what, n,
		    len - 1);
	return EL_OK;
}

enum el_err
aws_xml_result(xmlDocPtr doc, const char *action, xmlNodePtr *res, struct el_why *w)
{
	char name[96];
	xmlNodePtr root = xmlDocGetRootElement(doc);

	snprintf(name, sizeof(name), "%sResponse", action);
	if (strcmp((const char *)root->name, name) != 0)
		return el_fail(w, EL_EPARSE, "expected <%s>, got <%s>", name,
		    (const char *)root->name);
	snprintf(name, sizeof(name), "%sResult", action);
	if ((*res = aws_xml_child(root, name)) == NULL)
		return el_fail(w, EL_EPARSE, "response has no %s", name);
	return EL_OK;
}

/* ---------------------------------------------------------------- errors */

/* A short printable excerpt of a body for an error message: what a human needs to see
 * that a proxy, not AWS, answered. */
static void
excerpt(const char *body, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;
	int sp = 0;

	for (i = 0; i < len && o + 4 < outlen; i++) {
		unsigned char ch = (unsigned char)body[i];

		if (isspace(ch)) {
			sp = 1;
			continue;
		}
		if (sp && o > 0)
			out[o++] = ' ';
		sp = 0;
		out[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	if (i < len && o + 3 < outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void
not_aws_error(const char *body, size_t len, int status, const char *kind, const char *why,
    struct aws_error *err)
{
	char ex[120];

	if (len == 0) {
		aws_error_set(err, status, NULL, "HTTP %d with an empty body", status);
		return;
	}
	excerpt(body, len, ex, sizeof(ex));
	aws_error_set(err, status, NULL, "HTTP %d with a body that is not an AWS %s error "
	    "(%s): %s", status, kind, why, ex);
}

enum el_err
aws_parse_query_error(const char *body, size_t len, int status, struct aws_error *err)
{
	struct aws_error tmp;
	struct el_why w;
	xmlDocPtr doc = NULL;
	xmlNodePtr root, e = NULL, rid = NULL;
	enum el_err r;

	if (err == NULL)
		err = &tmp;
	if ((r = aws_xml_read(body, len, &doc, &w)) != EL_OK) {
		not_aws_error(body, len, status, "XML", w.msg, err);
		return EL_EPARSE;
	}
	root = xmlDocGetRootElement(doc);
	if (strcmp((const char *)root->name, "ErrorResponse") == 0) {
		/* STS, IAM */
		e = aws_xml_child(root, "Error");
		rid = aws_xml_child(root, "RequestId");
	} else if (strcmp((const char *)root->name, "Response") == 0) {
		/* EC2 */
		e = aws_xml_path(root, "Errors", "Error", NULL);
		if ((rid = aws_xml_child(root, "RequestID")) == NULL)
			rid = aws_xml_child(root, "RequestId");
	} else if (strcmp((const char *)root->name, "Error") == 0) {
		e = root;
		rid = aws_xml_child(root, "RequestId");
	}
	if (e == NULL) {
		not_aws_error(body, len, status, "XML", "unexpected document element", err);
		r = EL_EPARSE;
		goto out;
	}
	memset(err, 0, sizeof(*err));
	err->http_status = status;
	if (aws_xml_copy(aws_xml_child(e, "Code"), "Code", err->code, sizeof(err->code),
	    &w) != EL_OK) {
		aws_error_set(err, status, NULL, "HTTP %d with an AWS error document without "
		    "a Code", status);
		r = EL_EPARSE;
		goto out;
	}
	/* Message and request id are informative: truncation is fine, absence too. */
	if (aws_xml_child(e, "Message") != NULL)
		(void)aws_xml_copy(aws_xml_child(e, "Message"), "Message", err->message,
		    sizeof(err->message), &w);
	if (rid != NULL)
		(void)aws_xml_copy(rid, "RequestId", err->request_id, sizeof(err->request_id),
		    &w);
	r = EL_OK;
out:
	aws_xml_free(doc);
	return r;
}

enum el_err
aws_parse_json_error(const char *body, size_t len, int status, const char *request_id,
    struct aws_error *err)
{
	struct aws_error tmp;
	json_error_t je;
	json_t *j = NULL, *v;
	const char *type = NULL, *p, *msg = NULL;
	size_t n;
	enum el_err r = EL_EPARSE;

	if (err == NULL)
		err = &tmp;
	if (len == 0 || (j = json_loadb(body, len, 0, &je)) == NULL) {
		not_aws_error(body, len, status, "JSON", len ? je.text : "empty", err);
		if (request_id != NULL)
			el_strlcpy(err->request_id, request_id, sizeof(err->request_id));
		return EL_EPARSE;
	}
	if (!json_is_object(j)) {
		not_aws_error(body, len, status, "JSON", "not an object", err);
		goto out;
	}
	memset(err, 0, sizeof(*err));
	err->http_status = status;
	if (request_id != NULL)
		el_strlcpy(err->request_id, request_id, sizeof(err->request_id));
	if ((v = json_object_get(j, "__type")) != NULL && json_is_string(v))
		type = json_string_value(v);
	else if ((v = json_object_get(j, "code")) != NULL && json_is_string(v))
		type = json_string_value(v);
	else if ((v = json_object_get(j, "Code")) != NULL && json_is_string(v))
		type = json_string_value(v);
	if (type != NULL) {
		/* "com.amazonaws.ssm#InvalidInstanceId" -> "InvalidInstanceId"; some add ":url". */
		if ((p = strrchr(type, '#')) != NULL)
			type = p + 1;
		n = strcspn(type, ":");
		if (n >= sizeof(err->code))
			n = sizeof(err->code) - 1;
		memcpy(err->code, type, n);
		err->code[n] = '\0';
	}
	if (err->code[0] == '\0') {
		/* Like botocore: an error without a type is named by its status. */
		if (status <= 0) {
			not_aws_error(body, len, status, "JSON", "no __type", err);
			goto out;
		}
		snprintf(err->code, sizeof(err->code), "%d", status);
	}
	if ((v = json_object_get(j, "message")) != NULL && json_is_string(v))
		msg = json_string_value(v);
	else if ((v = json_object_get(j, "Message")) != NULL && json_is_string(v))
		msg = json_string_value(v);
	else if ((v = json_object_get(j, "errorMessage")) != NULL && json_is_string(v))
		msg = json_string_value(v);
	if (msg != NULL)
		el_strlcpy(err->message, msg, sizeof(err->message));
	r = EL_OK;
out:
	json_decref(j);
	return r;
}

int
aws_error_retryable(const struct aws_error *err)
{
	static const char *const codes[] = {
		/* throttling */
		"Throttling", "ThrottlingException", "ThrottledException",
		"RequestThrottledException", "TooManyRequestsException",
		"ProvisionedThroughputExceededException", "TransactionInProgressException",
		"RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException",
		"RequestThrottled", "SlowDown", "EC2ThrottledException",
		/* transient */
		"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
		"InternalError", "InternalFailure", "InternalServerError", "ServiceUnavailable",
		"ServiceUnavailableException", "IDPCommunicationError",
	};
	size_t i;

	if (err->http_status >= 500 || err->http_status == 429)
		return 1;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(err->code, codes[i]) == 0)
			return 1;
	return 0;
}

/* ---------------------------------------------------------------- client */

static int
valid_region(const char *r)
{
	size_t i;

	if (r == NULL || *r == '\0' || strlen(r) > 32)
		return 0;
	for (i = 0; r[i] != '\0'; i++)
		if (!(islower((unsigned char)r[i]) || isdigit((unsigned char)r[i]) || r[i] == '-'))
			return 0;
	return 1;
}

/* Splits an endpoint URL into what we sign: host[:port] (the Host header) and path. */
static enum el_err
parse_endpoint(const char *url, char *host, size_t hostlen, char *path, size_t pathlen,
    struct el_why *w)
{
	CURLU *u;
	char *scheme = NULL, *h = NULL, *port = NULL, *p = NULL, *x = NULL;
	enum el_err r = EL_OK;

	if ((u = curl_url()) == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		r = el_fail(w, EL_ECONFIG, "'%s' is not a URL", url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
		r = el_fail(w, EL_ECONFIG, "'%s': only http:// and https:// are allowed", url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &x, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_QUERY, &x, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &x, 0) == CURLUE_OK) {
		r = el_fail(w, EL_ECONFIG, "'%s': an endpoint has no user, query or fragment",
		    url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || *h == '\0') {
		r = el_fail(w, EL_ECONFIG, "'%s' has no host", url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
		snprintf(host, hostlen, "%s:%s", h, port);
	else
		snprintf(host, hostlen, "%s", h);
	if (curl_url_get(u, CURLUPART_PATH, &p, 0) != CURLUE_OK || *p == '\0')
		el_strlcpy(path, "/", pathlen);
	else if (el_strlcpy(path, p, pathlen) >= pathlen)
		r = el_fail(w, EL_ECONFIG, "'%s': path too long", url);
out:
	curl_free(scheme);
	curl_free(h);
	curl_free(port);
	curl_free(p);
	curl_free(x);
	curl_url_cleanup(u);
	return r;
}

static char *
first_set(const char *a, const char *b, const char *c, const char *d)
{
	const char *v[4] = {a, b, c, d};
	size_t i;

	for (i = 0; i < 4; i++)
		if (v[i] != NULL && *v[i] != '\0')
			return strdup(v[i]);
	return NULL;
}

enum el_err
aws_client_new(const struct aws_config *cfg, struct aws_client **out, struct el_why *w)
{
	static const struct aws_config none;
	struct aws_client *c;
	const char *cfg_ep[AWS_SVC__MAX];
	char host[512], path[512];
	const char *reg;
	enum el_err r = EL_OK;
	int i;

	*out = NULL;
	pthread_once(&aws_once, aws_global_init);
	if (cfg == NULL)
		cfg = &none;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory");
	pthread_mutex_init(&c->pool_mu, NULL);
	pthread_mutex_init(&c->obs_mu, NULL);
	pthread_mutex_init(&c->creds_mu, NULL);

	reg = cfg->region;
	if (reg == NULL || *reg == '\0')
		reg = getenv("AWS_REGION");
	if (reg == NULL || *reg == '\0')
		reg = getenv("AWS_DEFAULT_REGION");
	if (reg != NULL && *reg != '\0') {
		if (!valid_region(reg)) {
			r = el_fail(w, EL_ECONFIG, "aws region '%s' is not a region name", reg);
			goto out;
		}
		if ((c->region = strdup(reg)) == NULL) {
			r = el_fail(w, EL_ENOMEM, "out of memory");
			goto out;
		}
	}

	cfg_ep[AWS_SVC_STS] = cfg->endpoint_sts;
	cfg_ep[AWS_SVC_IAM] = cfg->endpoint_iam;
	cfg_ep[AWS_SVC_SSM] = cfg->endpoint_ssm;
	cfg_ep[AWS_SVC_EC2] = cfg->endpoint_ec2;
	cfg_ep[AWS_SVC_S3] = cfg->endpoint_s3;
	cfg_ep[AWS_SVC_SIGNIN] = cfg->endpoint_signin;
	for (i = 0; i < AWS_SVC__MAX; i++) {
		c->endpoint[i] = first_set(cfg_ep[i], getenv(svc_env[i]), cfg->endpoint_all,
		    getenv("AWS_ENDPOINT_URL"));
		if (c->endpoint[i] == NULL)
			continue;
		if ((r = parse_endpoint(c->endpoint[i], host, sizeof(host), path, sizeof(path),
		    w)) != EL_OK) {
			/* w names the URL; say which setting it came from */
			struct el_why w2 = {{0}};

			if (w != NULL)
				el_strlcpy(w2.msg, w->msg, sizeof(w2.msg));
			r = el_fail(w, EL_ECONFIG, "aws endpoint for %s: %s", svc_names[i], w2.msg);
			goto out;
		}
	}

	c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
	c->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 5;
	c->max_retry_ms = cfg->max_retry_ms > 0 ? cfg->max_retry_ms : 20000;
	if (c->timeout_ms > 600000 || c->max_attempts > 20 || c->max_retry_ms > 3600000) {
		r = el_fail(w, EL_ECONFIG, "aws timeouts out of bounds (timeout <= 600 s, "
		    "attempts <= 20, retry budget <= 1 h)");
		goto out;
	}
	if (cfg->ca_file != NULL && *cfg->ca_file != '\0' &&
	    (c->ca_file = strdup(cfg->ca_file)) == NULL) {
		r = el_fail(w, EL_ENOMEM, "out of memory");
		goto out;
	}
out:
	if (r != EL_OK) {
		aws_client_free(c);
		return r;
	}
	*out = c;
	return EL_OK;
}

void
aws_client_free(struct aws_client *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->npool; i++)
		curl_easy_cleanup(c->pool[i]);
	for (i = 0; i < AWS_SVC__MAX; i++)
		free(c->endpoint[i]);
	aws_creds_clear(&c->creds);
	free(c->region);
	free(c->ca_file);
	pthread_mutex_destroy(&c->pool_mu);
	pthread_mutex_destroy(&c->obs_mu);
	pthread_mutex_destroy(&c->creds_mu);
	free(c);
}

void
aws_client_set_observer(struct aws_client *c, aws_call_observer fn, void *arg)
{
	pthread_mutex_lock(&c->obs_mu);
	c->obs = fn;
	c->obs_arg = arg;
	pthread_mutex_unlock(&c->obs_mu);
}

enum el_err
aws_region(struct aws_client *c, const char *region, char *buf, size_t len, struct el_why *w)
{
	const char *r = region != NULL && *region != '\0' ? region : c->region;

	if (r == NULL)
		return el_fail(w, EL_ECONFIG, "no AWS region: set aws.region in the config "
		    "or AWS_REGION");
	if (!valid_region(r))
		return el_fail(w, EL_EINVAL, "'%s' is not a region name", r);
	el_strlcpy(buf, r, len);
	return EL_OK;
}

struct endpoint {
	char url[1024];
	char host[512];                 /* Host header: host[:port] */
	char path[512];
	char sign_region[64];
};

static enum el_err
endpoint_for(struct aws_client *c, enum aws_svc svc, const char *region, struct endpoint *ep,
    struct el_why *w)
{
	char reg[64];
	const char *suffix;
	enum el_err r;

	memset(ep, 0, sizeof(*ep));
	if (svc == AWS_SVC_SIGNIN) {
		/* one per partition; nothing is signed */
		el_strlcpy(ep->url, "https://signin.aws.amazon.com/", sizeof(ep->url));
		if (aws_region(c, region, reg, sizeof(reg), NULL) == EL_OK) {
			if (strncmp(reg, "cn-", 3) == 0)
				el_strlcpy(ep->url, "https://signin.amazonaws.cn/", sizeof(ep->url));
			else if (strncmp(reg, "us-gov-", 7) == 0)
				el_strlcpy(ep->url, "https://signin.amazonaws-us-gov.com/",
				    sizeof(ep->url));
		}
	} else if (svc == AWS_SVC_IAM) {
		/* IAM is global: one endpoint per partition, signed in its home region. */
		el_strlcpy(ep->sign_region, "us-east-1", sizeof(ep->sign_region));
		el_strlcpy(ep->url, "https://iam.amazonaws.com/", sizeof(ep->url));
		if (aws_region(c, region, reg, sizeof(reg), NULL) == EL_OK) {
			if (strncmp(reg, "cn-", 3) == 0) {
				el_strlcpy(ep->sign_region, "cn-north-1", sizeof(ep->sign_region));
				el_strlcpy(ep->url, "https://iam.cn-north-1.amazonaws.com.cn/",
				    sizeof(ep->url));
			} else if (strncmp(reg, "us-gov-", 7) == 0) {
				el_strlcpy(ep->sign_region, "us-gov-west-1",
				    sizeof(ep->sign_region));
				el_strlcpy(ep->url, "https://iam.us-gov.amazonaws.com/",
				    sizeof(ep->url));
			}
		}
	} else {
		if ((r = aws_region(c, region, reg, sizeof(reg), w)) != EL_OK)
			return r;
		el_strlcpy(ep->sign_region, reg, sizeof(ep->sign_region));
		suffix = strncmp(reg, "cn-", 3) == 0 ? "amazonaws.com.cn" : "amazonaws.com";
		snprintf(ep->url, sizeof(ep->url), "https://%s.%s.%s/", svc_names[svc], reg,
		    suffix);
	}
	if (c->endpoint[svc] != NULL &&
	    el_strlcpy(ep->url, c->endpoint[svc], sizeof(ep->url)) >= sizeof(ep->url))
		return el_fail(w, EL_ECONFIG, "%s endpoint URL too long", svc_names[svc]);
	return parse_endpoint(ep->url, ep->host, sizeof(ep->host), ep->path, sizeof(ep->path),
	    w);
}

enum el_err
aws_endpoint_url(struct aws_client *c, const char *service, const char *region, char *buf,
    size_t len, struct el_why *w)
{
	struct endpoint ep;
	enum el_err r;
	int i;

	for (i = 0; i < AWS_SVC__MAX; i++)
		if (service != NULL && strcmp(service, svc_names[i]) == 0)
			break;
	if (i == AWS_SVC__MAX)
		return el_fail(w, EL_EINVAL, "unknown service '%s'", service ? service : "");
	if ((r = endpoint_for(c, (enum aws_svc)i, region, &ep, w)) != EL_OK)
		return r;
	if (el_strlcpy(buf, ep.url, len) >= len)
		return el_fail(w, EL_ETOOBIG, "endpoint URL too long");
	return EL_OK;
}

/* ---------------------------------------------------------------- HTTP */

struct xfer {
	struct dbuf *body;
	int overflow;
	char request_id[128];
};

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;

	if (dbuf_add(x->body, data, n) != EL_OK) {
		x->overflow = 1;
		return 0;               /* aborts the transfer: CURLE_WRITE_ERROR */
	}
	return n;
}

static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	static const char *const names[] = {"x-amzn-requestid:", "x-amz-request-id:"};
	struct xfer *x = arg;
	size_t n = size * nmemb, i, k, e;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		k = strlen(names[i]);
		if (n <= k || strncasecmp(data, names[i], k) != 0)
			continue;
		while (k < n && (data[k] == ' ' || data[k] == '\t'))
			k++;
		for (e = n; e > k && isspace((unsigned char)data[e - 1]); e--)
			;
		if (e - k < sizeof(x->request_id)) {
			memcpy(x->request_id, data + k, e - k);
			x->request_id[e - k] = '\0';
		}
	}
	return n;
}

static CURL *
pool_get(struct aws_client *c)
{
	CURL *h = NULL;

	if (c != NULL) {
		pthread_mutex_lock(&c->pool_mu);
		if (c->npool > 0)
			h = c->pool[--c->npool];
		pthread_mutex_unlock(&c->pool_mu);
	}
	if (h != NULL) {
		/* keeps the handle's live connections and TLS session cache */
		curl_easy_reset(h);
		return h;
	}
	return curl_easy_init();
}

static void
pool_put(struct aws_client *c, CURL *h)
{
	if (h == NULL)
		return;
	if (c != NULL) {
		pthread_mutex_lock(&c->pool_mu);
		if (c->npool < AWS_POOL_MAX) {
			c->pool[c->npool++] = h;
			h = NULL;
		}
		pthread_mutex_unlock(&c->pool_mu);
	}
	if (h != NULL)
		curl_easy_cleanup(h);
}

static void
slist_free_wiped(struct curl_slist *l)
{
	struct curl_slist *i;

	for (i = l; i != NULL; i = i->next)
		if (i->data != NULL)
			sodium_memzero(i->data, strlen(i->data));
	curl_slist_free_all(l);
}

static enum el_err
slist_add(struct curl_slist **l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static enum el_err
slist_add(struct curl_slist **l, const char *fmt, ...)
{
	struct dbuf b;
	struct curl_slist *n;
	va_list ap;
	enum el_err r;

	dbuf_init(&b, 16384);
	va_start(ap, fmt);
	r = dbuf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (r != EL_OK) {
		dbuf_free_secret(&b);
		return r;
	}
	n = curl_slist_append(*l, b.p);
	dbuf_free_secret(&b);
	if (n == NULL)
		return EL_ENOMEM;
	*l = n;
	return EL_OK;
}

static void
common_opts(CURL *h, const char *ca_file, long timeout_ms, char *errbuf, struct xfer *x)
{
	long cto = timeout_ms < 5000 ? timeout_ms : 5000;

	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, cto);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->body->max);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "elevate/1 (libcurl)");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
}

/* Maps a curl failure; *retry says whether another attempt may help. */
static enum el_err
curl_failure(CURLcode cc, const struct xfer *x, const char *errbuf, int *retry,
    struct el_why *w)
{
	const char *what = errbuf[0] ? errbuf : curl_easy_strerror(cc);

	*retry = 0;
	if (x->overflow || cc == CURLE_FILESIZE_EXCEEDED)
		return el_fail(w, EL_ETOOBIG, "response larger than %zu bytes", x->body->max);
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		*retry = 1;
		return el_fail(w, EL_ETIMEOUT, "timed out: %s", what);
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		*retry = 1;
		return el_fail(w, EL_ENET, "%s", what);
	default:
		/* TLS verification, bad URL, unsupported protocol: retrying will not help */
		return el_fail(w, EL_ENET, "%s", what);
	}
}

enum el_err
aws_http_plain(struct aws_client *c, const char *method, const char *url,
    const char *const *headers, size_t nheaders, long timeout_ms, int *status,
    struct dbuf *body, struct el_why *w)
{
	struct xfer x;
	struct curl_slist *hl = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h;
	CURLcode cc;
	long code = 0;
	size_t i;
	int retry;
	enum el_err r = EL_OK;

	pthread_once(&aws_once, aws_global_init);
	*status = 0;
	memset(&x, 0, sizeof(x));
	x.body = body;
	if ((h = pool_get(c)) == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory");
	for (i = 0; i < nheaders; i++) {
		if (strpbrk(headers[i], "\r\n") != NULL) {
			r = el_fail(w, EL_EINVAL, "header with a line break");
			goto out;
		}
		if ((r = slist_add(&hl, "%s", headers[i])) != EL_OK) {
			r = el_fail(w, r, "out of memory");
			goto out;
		}
	}
	common_opts(h, c != NULL ? c->ca_file : NULL, timeout_ms, errbuf, &x);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	if (strcmp(method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	} else if (strcmp(method, "GET") != 0) {
		r = el_fail(w, EL_EINVAL, "unsupported method %s", method);
		goto out;
	}
	if ((cc = curl_easy_perform(h)) != CURLE_OK) {
		r = curl_failure(cc, &x, errbuf, &retry, w);
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	*status = (int)code;
out:
	slist_free_wiped(hl);
	pool_put(c, h);
	return r;
}

/* ---------------------------------------------------------------- the signed call */

static void
sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]. */
static long
backoff_ms(int attempt)
{
	return (long)randombytes_uniform((uint32_t)el_backoff(attempt, BACKOFF_BASE_MS,
	    BACKOFF_CAP_MS) + 1);
}

static int
header_safe(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return 0;
	return 1;
}

/* Appends src to dst (size len); EL_ETOOBIG when it does not fit. */
static enum el_err
strlcat_ok(char *dst, const char *src, size_t len)
{
	size_t n = strlen(dst);

	return el_strlcpy(dst + n, src, len - n) >= len - n ? EL_ETOOBIG : EL_OK;
}

struct attempt {
	int status;
	int retry;
	double secs;
};

static enum el_err
attempt_once(struct aws_client *c, const struct aws_call *call, const struct endpoint *ep,
    const struct aws_creds *cr, struct aws_resp *resp, struct attempt *at,
    struct aws_error *err)
{
	struct sigv4_header sh[5 + AWS_MAX_REST_HEADERS];
	struct sigv4_request sreq;
	struct sigv4_params sp;
	struct sigv4_result sig;
	struct xfer x;
	struct curl_slist *hl = NULL;
	struct el_why w = {{0}};
	char amz_date[32], target[160], errbuf[CURL_ERROR_SIZE] = "", payload[65];
	char path[4096], url[8192];      /* a sign-in GET carries the session in its query */
	const char *ctype, *method = "POST";
	int rest = call->proto == AWS_PROTO_REST;
	int sign = call->svc != AWS_SVC_SIGNIN;
	struct tm tm;
	time_t now;
	size_t nh = 0;
	int64_t t0;
	CURL *h = NULL;
	CURLcode cc;
	long code = 0;
	enum el_err r;

	memset(&sig, 0, sizeof(sig));
	memset(&x, 0, sizeof(x));
	at->status = 0;
	at->retry = 0;
	t0 = el_now_ms();
	dbuf_free_secret(&resp->body);
	dbuf_init(&resp->body, AWS_MAX_RESPONSE);
	resp->status = 0;
	resp->request_id[0] = '\0';
	x.body = &resp->body;

	ctype = call->proto == AWS_PROTO_JSON ? "application/x-amz-json-1.1" :
	    "application/x-www-form-urlencoded; charset=utf-8";
	el_strlcpy(path, ep->path, sizeof(path));
	el_strlcpy(url, ep->url, sizeof(url));
	if (rest) {
		/* S3: the method and the object's path name the operation. */
		ctype = call->content_type;
		method = call->method;
		if (call->nheaders > AWS_MAX_REST_HEADERS ||
		    sigv4_sha256_hex(call->body, call->body_len, payload) != EL_OK) {
			aws_error_set(err, 0, NULL, "cannot build the request");
			r = EL_EINVAL;
			goto out;
		}
		while (path[0] != '\0' && path[strlen(path) - 1] == '/')
			path[strlen(path) - 1] = '\0';
		while (url[0] != '\0' && url[strlen(url) - 1] == '/')
			url[strlen(url) - 1] = '\0';
		if (strlcat_ok(path, call->path, sizeof(path)) != EL_OK ||
		    strlcat_ok(url, call->path, sizeof(url)) != EL_OK) {
			aws_error_set(err, 0, NULL, "object path too long");
			r = EL_EINVAL;
			goto out;
		}
	}
	/* signed at each attempt with the clock of that attempt */
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
	if (ctype != NULL)
		sh[nh++] = (struct sigv4_header){"content-type", ctype};
	sh[nh++] = (struct sigv4_header){"host", ep->host};
	if (rest) {
		size_t i;

		sh[nh++] = (struct sigv4_header){"x-amz-content-sha256", payload};
		for (i = 0; i < call->nheaders; i++)
			sh[nh++] = call->headers[i];
	}
	sh[nh++] = (struct sigv4_header){"x-amz-date", amz_date};
	if (cr->session_token != NULL)
		sh[nh++] = (struct sigv4_header){"x-amz-security-token", cr->session_token};
	if (call->proto == AWS_PROTO_JSON) {
		snprintf(target, sizeof(target), "AmazonSSM.%s", call->action);
		sh[nh++] = (struct sigv4_header){"x-amz-target", target};
	}
	memset(&sreq, 0, sizeof(sreq));
	sreq.method = method;
	sreq.path = path;
	sreq.query = NULL;
	sreq.headers = sh;
	sreq.nheaders = nh;
	sreq.body = call->body;
	sreq.body_len = call->body_len;
	memset(&sp, 0, sizeof(sp));
	sp.access_key = cr->access_key_id;
	sp.secret_key = cr->secret_access_key;
	sp.session_token = cr->session_token;   /* same value as the header above */
	sp.region = ep->sign_region;
	sp.service = svc_names[call->svc];
	sp.amz_date = amz_date;
	sp.normalize_path = !rest;
	sp.double_encode_path = !rest;
	if (sign && (r = sigv4_sign(&sreq, &sp, &sig)) != EL_OK) {
		aws_error_set(err, 0, NULL, "signing failed: %s", el_strerror(r));
		goto out;
	}

	if (!sign) {
		if ((r = slist_add(&hl, "Host: %s", ep->host)) != EL_OK ||
		    (r = slist_add(&hl, "Accept: application/json")) != EL_OK) {
			aws_error_set(err, 0, NULL, "out of memory");
			goto out;
		}
	} else if ((r = slist_add(&hl, "Host: %s", ep->host)) != EL_OK ||
	    (r = ctype ? slist_add(&hl, "Content-Type: %s", ctype) :
	    slist_add(&hl, "Content-Type:")) != EL_OK ||
	    (rest && (r = slist_add(&hl, "X-Amz-Content-SHA256: %s", payload)) != EL_OK) ||
	    (r = slist_add(&hl, "X-Amz-Date: %s", amz_date)) != EL_OK ||
	    (r = slist_add(&hl, "Authorization: %s", sig.authorization)) != EL_OK ||
	    (r = slist_add(&hl, "Expect:")) != EL_OK ||
	    (cr->session_token != NULL && (r = slist_add(&hl, "X-Amz-Security-Token: %s",
	    cr->session_token)) != EL_OK) ||
	    (call->proto == AWS_PROTO_JSON &&
	    (r = slist_add(&hl, "X-Amz-Target: %s", target)) != EL_OK)) {
		aws_error_set(err, 0, NULL, "out of memory");
		goto out;
	}
	if ((h = pool_get(c)) == NULL) {
		r = EL_ENOMEM;
		aws_error_set(err, 0, NULL, "out of memory");
		goto out;
	}
	common_opts(h, c->ca_file, c->timeout_ms, errbuf, &x);
	for (nh = 0; rest && nh < call->nheaders; nh++)
		if ((r = slist_add(&hl, "%s: %s", call->headers[nh].name,
		    call->headers[nh].value)) != EL_OK) {
			aws_error_set(err, 0, NULL, "out of memory");
			goto out;
		}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	else {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, call->body ? call->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);

	cc = curl_easy_perform(h);
	el_strlcpy(resp->request_id, x.request_id, sizeof(resp->request_id));
	if (cc != CURLE_OK) {
		r = curl_failure(cc, &x, errbuf, &at->retry, &w);
		aws_error_set(err, 0, x.request_id, "%s", w.msg);
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	at->status = resp->status = (int)code;
	if (code >= 200 && code < 300) {
		r = EL_OK;
		goto out;
	}
	if (!sign) {
		/* the federation endpoint answers a refusal with a bare status */
		aws_error_set(err, (int)code, x.request_id, "the federation endpoint answered "
		    "HTTP %ld: it refused the credentials (expired or revoked?)", code);
		r = EL_OK;
	} else if (call->proto == AWS_PROTO_JSON)
		r = aws_parse_json_error(resp->body.p, resp->body.len, (int)code,
		    x.request_id[0] ? x.request_id : NULL, err);
	else
		r = aws_parse_query_error(resp->body.p, resp->body.len, (int)code, err);
	if (err != NULL && err->request_id[0] == '\0')
		el_strlcpy(err->request_id, x.request_id, sizeof(err->request_id));
	if (r == EL_OK) {
		r = EL_EAWS;
		at->retry = err != NULL && aws_error_retryable(err);
	} else {
		/* not an AWS document (a proxy's page): only a 5xx/429 is worth another go */
		at->retry = code >= 500 || code == 429;
	}
	dbuf_free_secret(&resp->body);
	dbuf_init(&resp->body, AWS_MAX_RESPONSE);
out:
	at->secs = (double)(el_now_ms() - t0) / 1000.0;
	sigv4_result_free(&sig);
	slist_free_wiped(hl);
	pool_put(c, h);
	return r;
}

static const char *
outcome_of(enum el_err r, const struct aws_error *err)
{
	if (r == EL_OK)
		return "ok";
	if (err->code[0] != '\0')
		return err->code;
	if (r == EL_ENET || r == EL_ETIMEOUT)
		return "network";
	return "invalid-response";
}

void
aws_resp_init(struct aws_resp *r)
{
	memset(r, 0, sizeof(*r));
	dbuf_init(&r->body, AWS_MAX_RESPONSE);
}

void
aws_resp_free(struct aws_resp *r)
{
	dbuf_free_secret(&r->body);
	dbuf_init(&r->body, AWS_MAX_RESPONSE);
}

enum el_err
aws_call_do(struct aws_client *c, const struct aws_call *call, struct aws_resp *resp,
    struct aws_error *err)
{
	struct aws_error tmp;
	struct aws_creds own;
	const struct aws_creds *cr;
	struct endpoint ep;
	struct attempt at;
	struct el_why w = {{0}};
	const char *svc = svc_names[call->svc];
	aws_call_observer obs;
	void *obs_arg;
	int64_t t0 = el_now_ms(), elapsed;
	long delay;
	int attempt, quiet;
	enum el_err r;

	if (err == NULL)
		err = &tmp;
	memset(err, 0, sizeof(*err));
	memset(&own, 0, sizeof(own));
	if ((r = endpoint_for(c, call->svc, call->region, &ep, &w)) != EL_OK) {
		aws_error_set(err, 0, NULL, "%s", w.msg);
		return r;
	}
	if (call->as != NULL) {
		cr = call->as;
	} else {
		if ((r = aws_broker_creds(c, &own, &w)) != EL_OK) {
			aws_error_set(err, 0, NULL, "broker credentials: %s", w.msg);
			log_warn("aws %s %s: no broker credentials: %s", svc, call->action, w.msg);
			return r;
		}
		cr = &own;
	}
	if (cr->access_key_id[0] == '\0' || cr->secret_access_key == NULL ||
	    !header_safe(cr->access_key_id) ||
	    (cr->session_token != NULL && !header_safe(cr->session_token))) {
		/* nothing was sent: not a call the observer should count */
		aws_error_set(err, 0, NULL, "%s %s: credentials are incomplete or malformed",
		    svc, call->action);
		aws_creds_clear(&own);
		return EL_EINVAL;
	}

	for (attempt = 1;; attempt++) {
		r = attempt_once(c, call, &ep, cr, resp, &at, err);
		quiet = r == EL_EAWS && call->quiet_code != NULL &&
		    strcmp(err->code, call->quiet_code) == 0;
		if (r == EL_OK || quiet) {
			log_debug("aws %s %s attempt %d: HTTP %d%s%s request-id %s (%.3f s)", svc,
			    call->action, attempt, at.status, quiet ? " " : "",
			    quiet ? err->code : "", r == EL_OK ? resp->request_id :
			    err->request_id, at.secs);
			break;
		}
		elapsed = el_now_ms() - t0;
		delay = backoff_ms(attempt);
		if (!at.retry || attempt >= c->max_attempts ||
		    elapsed + delay > c->max_retry_ms) {
			log_warn("aws %s %s failed after %d attempt%s: %s%s%s (HTTP %d, "
			    "request-id %s)", svc, call->action, attempt, attempt == 1 ? "" : "s",
			    err->code, err->code[0] ? ": " : "", err->message, at.status,
			    err->request_id[0] ? err->request_id : "none");
			break;
		}
		log_warn("aws %s %s attempt %d/%d: %s%s%s (HTTP %d, request-id %s); retrying "
		    "in %ld ms", svc, call->action, attempt, c->max_attempts, err->code,
		    err->code[0] ? ": " : "", err->message, at.status,
		    err->request_id[0] ? err->request_id : "none", delay);
		sleep_ms(delay);
	}
	if (r == EL_OK) {
		memset(err, 0, sizeof(*err));
		err->http_status = resp->status;
		el_strlcpy(err->request_id, resp->request_id, sizeof(err->request_id));
	}
	aws_creds_clear(&own);
	pthread_mutex_lock(&c->obs_mu);
	obs = c->obs;
	obs_arg = c->obs_arg;
	pthread_mutex_unlock(&c->obs_mu);
	if (obs != NULL)
		obs(obs_arg, svc, call->action, outcome_of(r, err),
		    (double)(el_now_ms() - t0) / 1000.0);
	return r;
}

/* ---------------------------------------------------------------- id lists */

enum el_err
aws_ids_add(struct aws_ids *l, const char *id)
{
	char **nv;
	size_t ncap;

	if (l->n >= AWS_MAX_IDS)
		return EL_ETOOBIG;
	if (l->n == l->cap) {
		ncap = l->cap ? l->cap * 2 : 16;
		if ((nv = realloc(l->v, ncap * sizeof(*nv))) == NULL)
			return EL_ENOMEM;
		l->v = nv;
		l->cap = ncap;
	}
	if ((l->v[l->n] = strdup(id)) == NULL)
		return EL_ENOMEM;
	l->n++;
	return EL_OK;
}

void
aws_ids_free(struct aws_ids *l)
{
	el_strv_free(l->v, l->n);
	memset(l, 0, sizeof(*l));
}
