/*
 * aws_internal.h — what the aws_*.c files share among themselves and expose to their
 * unit tests: the client's innards, the signed-call engine, XML helpers, and every
 * response parser as a pure function of (bytes, length). Not for other modules.
 */
#ifndef ELEVATE_AWS_INTERNAL_H
#define ELEVATE_AWS_INTERNAL_H

#include <pthread.h>
#include <stddef.h>

#include <curl/curl.h>
#include <libxml/tree.h>

#include "elevate/aws.h"
#include "elevate/el.h"
#include "elevate/sigv4.h"

#define AWS_MAX_RESPONSE   (1024 * 1024)   /* any response body above this is EL_ETOOBIG */
#define AWS_MAX_REQUEST    (1024 * 1024)   /* request bodies we build */
#define AWS_MAX_REST_HEADERS 8              /* extra headers of a REST call */
#define AWS_MAX_IDS        10000           /* ids collected over all pages */
#define AWS_MAX_PAGES      200
#define AWS_POOL_MAX       8               /* idle curl handles kept for connection reuse */
#define AWS_REFRESH_MARGIN 300             /* refresh broker credentials this early (s) */

/* signin: the console federation endpoint, plain GETs that carry the credentials in the
 * query instead of a signature */
enum aws_svc { AWS_SVC_STS = 0, AWS_SVC_IAM, AWS_SVC_SSM, AWS_SVC_EC2, AWS_SVC_S3,
	AWS_SVC_SIGNIN, AWS_SVC__MAX };

struct aws_client {
	char *region;                           /* default region or NULL */
	char *endpoint[AWS_SVC__MAX];           /* resolved override or NULL (real AWS) */
	long timeout_ms;
	int max_attempts;
	long max_retry_ms;
	char *ca_file;

	pthread_mutex_t pool_mu;                /* idle easy handles (one user at a time) */
	CURL *pool[AWS_POOL_MAX];
	size_t npool;

	pthread_mutex_t obs_mu;
	aws_call_observer obs;
	void *obs_arg;

	pthread_mutex_t creds_mu;               /* the broker credential cache */
	struct aws_creds creds;
	int have_creds;
	int64_t creds_fetched;                  /* el_now() of the last successful fetch */
};

const char *aws_svc_name(enum aws_svc svc);

/* ---- the signed call (aws_http.c) ---- */
/* REST: S3's style (method and path name the operation, errors are <Error> XML). */
enum aws_proto { AWS_PROTO_QUERY, AWS_PROTO_JSON, AWS_PROTO_REST };

struct aws_call {
	enum aws_svc svc;
	const char *action;             /* logs, metrics, and X-Amz-Target for JSON */
	const char *region;             /* NULL: default (IAM always signs us-east-1) */
	const struct aws_creds *as;     /* NULL: broker credentials */
	enum aws_proto proto;
	const char *body;               /* form or JSON, borrowed */
	size_t body_len;
	const char *quiet_code;         /* an expected error code (NoSuchEntity): logged at debug */
	/* AWS_PROTO_REST only */
	const char *method;             /* "PUT", "GET" */
	const char *path;               /* "/bucket/key", encoded, after the endpoint's path */
	const char *content_type;       /* NULL: none */
	const struct sigv4_header *headers;   /* more headers, signed and sent */
	size_t nheaders;
};

struct aws_resp {
	int status;
	struct dbuf body;               /* NUL-terminated, <= AWS_MAX_RESPONSE */
	char request_id[128];           /* from headers (x-amzn-RequestId, x-amz-request-id) */
};
void aws_resp_init(struct aws_resp *r);
/* Wipes (responses may carry credentials) and frees. */
void aws_resp_free(struct aws_resp *r);

/*
 * Signs and sends with retries. EL_OK: a 2xx answer is in resp (caller parses it).
 * Otherwise err says why (AWS error parsed from the body per protocol) and resp is
 * empty. Reports to the observer.
 */
enum el_err aws_call_do(struct aws_client *c, const struct aws_call *call,
    struct aws_resp *resp, struct aws_error *err);

/* Resolves region (call's or default) into buf; EL_ECONFIG when none. */
enum el_err aws_region(struct aws_client *c, const char *region, char *buf, size_t len,
    struct el_why *w);

/* Fills err for a failure that is not an AWS error document. */
void aws_error_set(struct aws_error *err, int status, const char *request_id,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Unsigned single-attempt request for the credential providers (container, IMDS).
 * headers: "Name: value" strings. body must be dbuf_init'ed by the caller (its max is
 * the ceiling). c may be NULL (no CA file, fresh handle).
 */
enum el_err aws_http_plain(struct aws_client *c, const char *method, const char *url,
    const char *const *headers, size_t nheaders, long timeout_ms, int *status,
    struct dbuf *body, struct el_why *w);

/* Is s min..max characters of IAM's name set [A-Za-z0-9_+=,.@-]? */
int aws_name_ok(const char *s, size_t min, size_t max);

/* ---- encoding ---- */
/* Appends "&key=value" (no '&' when b is empty), both encoded. */
enum el_err aws_form_add(struct dbuf *b, const char *key, const char *value);

/* ---- XML (libxml2, no network, no DTD, no entity substitution) ---- */
/* EL_EPARSE (w says why) when not well-formed XML or when it has a DOCTYPE. */
enum el_err aws_xml_read(const char *buf, size_t len, xmlDocPtr *doc, struct el_why *w);
/* Frees the document after wiping every text node (they may hold secrets). */
void aws_xml_free(xmlDocPtr doc);
/* First element child with that local name (namespaces ignored), or NULL. */
xmlNodePtr aws_xml_child(xmlNodePtr parent, const char *name);
/* Follows a NULL-terminated path of local names from parent. */
xmlNodePtr aws_xml_path(xmlNodePtr parent, ...) __attribute__((sentinel));
/* Concatenated text/CDATA children, trimmed; caller frees (wipe if secret). NULL:
 * no node or out of memory. */
char *aws_xml_text(xmlNodePtr node);
/* Text of a required path element copied into buf; EL_EPARSE naming `what` when absent
 * or empty, EL_ETOOBIG when it does not fit. */
enum el_err aws_xml_copy(xmlNodePtr node, const char *what, char *buf, size_t len,
    struct el_why *w);

/* The result of a Query response: root <ActionResponse> (EL_EPARSE otherwise), child
 * <ActionResult> (EL_EPARSE naming it when absent). */
enum el_err aws_xml_result(xmlDocPtr doc, const char *action, xmlNodePtr *res,
    struct el_why *w);

/* ---- error documents (aws_http.c) ---- */
/*
 * Query/XML protocol error: ErrorResponse/Error/{Code,Message} + RequestId (STS, IAM) or
 * Response/Errors/Error/{Code,Message} + RequestID (EC2). EL_OK: err filled with an AWS
 * error. EL_EPARSE: not such a document; err->message says so with the HTTP status.
 */
enum el_err aws_parse_query_error(const char *body, size_t len, int status,
    struct aws_error *err);
/* JSON protocol error: {"__type": "prefix#Code", "message"|"Message"}; request id from
 * the header value (may be NULL). Same return convention. */
enum el_err aws_parse_json_error(const char *body, size_t len, int status,
    const char *request_id, struct aws_error *err);

/* ---- response parsers (one per call) ---- */
enum el_err aws_parse_assume_role(const char *xml, size_t len, struct aws_assume_role_out *out,
    struct el_why *w);
enum el_err aws_parse_caller_identity(const char *xml, size_t len, char *arn, size_t arnlen,
    struct el_why *w);
enum el_err aws_parse_get_role(const char *xml, size_t len, char *role_id, size_t idlen,
    int *max_session_duration, struct el_why *w);
/* *out: caller decrefs; SessionId, TokenValue, StreamUrl checked to be strings. */
enum el_err aws_parse_start_session(const char *json, size_t len, json_t **out,
    struct el_why *w);

/* A growing list of ids with a ceiling (AWS_MAX_IDS). */
struct aws_ids {
	char **v;
	size_t n, cap;
};
enum el_err aws_ids_add(struct aws_ids *l, const char *id);
void aws_ids_free(struct aws_ids *l);

/* Appends SessionIds whose Owner equals owner_arn (NULL: all); *next_token: caller
 * frees, NULL on the last page. */
enum el_err aws_parse_describe_sessions(const char *json, size_t len, const char *owner_arn,
    struct aws_ids *ids, char **next_token, struct el_why *w);
/* Appends every instanceId of every reservation; *next_token as above. */
enum el_err aws_parse_describe_instances(const char *xml, size_t len, struct aws_ids *ids,
    char **next_token, struct el_why *w);

/* ---- credential providers (aws_creds.c) ---- */
/* Container/IMDS JSON {AccessKeyId, SecretAccessKey, Token, Expiration[, Code]}. */
enum el_err aws_parse_json_creds(const char *json, size_t len, const char *source,
    struct aws_creds *out, struct el_why *w);
/* AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN]. EL_ENOENT: not set. */
enum el_err aws_creds_from_env(struct aws_creds *out, struct el_why *w);
/*
 * Static keys of profile from the shared credentials file, then the config file
 * ("[profile NAME]", "[default]"). Either path may be NULL or missing. EL_ENOENT: no
 * such profile, or one without keys (the chain goes on); EL_ECONFIG: the profile was
 * asked for explicitly (is_explicit != 0) and exists in neither file, or it uses a kind of
 * credentials elevate does not support (role_arn, sso_*, credential_process ...).
 */
enum el_err aws_creds_from_profile(const char *cred_file, const char *config_file,
    const char *profile, int is_explicit, struct aws_creds *out, struct el_why *w);
/* The whole chain, uncached. c may be NULL. */
enum el_err aws_creds_chain(struct aws_client *c, struct aws_creds *out, struct el_why *w);

#endif
