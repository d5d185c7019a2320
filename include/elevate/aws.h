/*
 * aws.h — the only door to AWS: the broker's own credential chain and the handful of
 * STS, IAM, SSM and EC2 calls elevate makes, signed with SigV4 over libcurl.
 * No AWS SDK. Every call retries throttling, 5xx and network failures with capped,
 * jittered backoff and reports AWS's error code, message and request id.
 */
#ifndef ELEVATE_AWS_H
#define ELEVATE_AWS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "elevate/el.h"

/*
 * What went wrong on the AWS side. code is empty when AWS did not answer with an error
 * document (network failure, timeout, an unparseable body, a local validation error);
 * message then says what happened. Never holds a secret.
 */
struct aws_error {
	int http_status;                /* 0 when no HTTP response was received */
	char code[128];                 /* "AccessDenied", "ThrottlingException" ... */
	char message[512];
	char request_id[128];
};

/*
 * A set of AWS credentials. secret_access_key and session_token are malloc'd and
 * owned by the struct: release them only with aws_creds_clear(), which wipes them.
 * A zeroed struct is a valid empty value.
 */
/* Is this error worth another attempt (throttling, 5xx, 429)? The client's retry rule,
 * also used by the engine to tell a transient failure from a refusal. */
int aws_error_retryable(const struct aws_error *err);

struct aws_creds {
	char access_key_id[129];
	char *secret_access_key;
	char *session_token;            /* NULL: long-term keys */
	int64_t expiration;             /* epoch seconds; 0 = none */
	char source[64];                /* "environment", "shared-credentials-file (profile default)",
	                                   "shared-config-file (profile x)", "container", "imds" */
};
/* Wipes and frees the secrets and zeroes the struct. NULL is a no-op. */
void aws_creds_clear(struct aws_creds *c);
/* Deep copy; dst is overwritten (clear it first if it held anything). On error dst is empty. */
enum el_err aws_creds_copy(struct aws_creds *dst, const struct aws_creds *src);
/* Fills c from borrowed strings (token, source may be NULL). c is overwritten. */
enum el_err aws_creds_set(struct aws_creds *c, const char *access_key_id,
    const char *secret_access_key, const char *session_token, int64_t expiration,
    const char *source);

/* Filled by the daemon from elevated.json; NULL strings = unset. Borrowed during
 * aws_client_new() only (the client keeps copies). */
struct aws_config {
	const char *region;             /* default region; else env AWS_REGION, AWS_DEFAULT_REGION */
	/*
	 * Endpoint of a service, first that is set: endpoint_<svc>, env AWS_ENDPOINT_URL_<SVC>,
	 * endpoint_all, env AWS_ENDPOINT_URL, then the real AWS endpoint.
	 */
	const char *endpoint_all;
	const char *endpoint_sts, *endpoint_iam, *endpoint_ssm, *endpoint_ec2, *endpoint_s3;
	const char *endpoint_signin;    /* the console's federation endpoint */
	long timeout_ms;                /* per attempt; 0 = 10000 */
	int max_attempts;               /* 0 = 5 */
	long max_retry_ms;              /* total retry budget; 0 = 20000 */
	const char *ca_file;            /* optional CA bundle for TLS verification */
};

/* One per daemon; every function below may be called from several threads at once. */
struct aws_client;
/* *out: caller frees with aws_client_free. Fails on a bad endpoint URL (EL_ECONFIG). */
enum el_err aws_client_new(const struct aws_config *cfg, struct aws_client **out,
    struct el_why *w);
void aws_client_free(struct aws_client *c);

/*
 * The broker's own credentials via the chain: environment, shared files (AWS_PROFILE),
 * container provider, IMDSv2. Cached; refreshed at least 5 minutes before expiry.
 * Never logs secrets. *out is a copy the caller clears with aws_creds_clear().
 */
enum el_err aws_broker_creds(struct aws_client *c, struct aws_creds *out, struct el_why *w);
/* For `elevated check`: where the broker's credentials come from (no secret). */
enum el_err aws_broker_creds_source(struct aws_client *c, char *buf, size_t len,
    struct el_why *w);

/* The URL a service is reached at for region (NULL: default region), e.g. for
 * session-manager-plugin's endpoint argument. */
enum el_err aws_endpoint_url(struct aws_client *c, const char *service, const char *region,
    char *buf, size_t len, struct el_why *w);

struct aws_tag {
	const char *key, *value;
};

struct aws_assume_role_in {
	const char *role_arn;
	const char *role_session_name;  /* 2-64 of [A-Za-z0-9_+=,.@-] */
	const char *source_identity;    /* nullable; same charset, not starting "aws:" */
	const char *policy;             /* session policy JSON, nullable */
	const char *region;             /* nullable: the default region */
	int duration_seconds;           /* 0: AWS's default; else 900..43200 */
	const struct aws_tag *tags;     /* up to 50 */
	size_t ntags;
};

/* out->creds: caller clears with aws_creds_clear() (also on error it is left empty). */
struct aws_assume_role_out {
	struct aws_creds creds;
	char assumed_role_arn[512];
	char assumed_role_id[256];      /* "AROA...:SESSIONNAME" = aws:userid of the session */
	int packed_policy_size;         /* percent; -1 when absent */
	char request_id[128];
};

/*
 * Each call below returns EL_OK, or: EL_EAWS (AWS refused: err->code), EL_ENET /
 * EL_ETIMEOUT (no answer after retries), EL_EPARSE (an answer that is not what AWS
 * sends), EL_ETOOBIG (response over 1 MiB), EL_EINVAL (bad argument, checked before
 * any network I/O), EL_ECONFIG (no region, no broker credentials). err may be NULL.
 */

/* Signed with the broker's credentials, regional STS endpoint. */
enum el_err aws_sts_assume_role(struct aws_client *c, const struct aws_assume_role_in *in,
    struct aws_assume_role_out *out, struct aws_error *err);
enum el_err aws_sts_get_caller_identity(struct aws_client *c,
    const struct aws_creds *as /* NULL: broker */, const char *region, char *arn,
    size_t arnlen, struct aws_error *err);

/* IAM, broker credentials. NoSuchEntity is EL_ENOENT (err filled) for all four. */
enum el_err aws_iam_get_role(struct aws_client *c, const char *role_name, char *role_id,
    size_t idlen, int *max_session_duration /* nullable */, struct aws_error *err);
enum el_err aws_iam_put_role_policy(struct aws_client *c, const char *role_name,
    const char *policy_name, const char *doc, struct aws_error *err);
enum el_err aws_iam_delete_role_policy(struct aws_client *c, const char *role_name,
    const char *policy_name, struct aws_error *err);

/* SSM (JSON 1.1). `as` = credentials to sign with (the grant's for StartSession; NULL =
 * broker). region NULL = default. */
/* request borrowed ({"Target",...}); *response: caller decrefs, has string SessionId,
 * TokenValue, StreamUrl (TokenValue is a secret: never log it). */
enum el_err aws_ssm_start_session(struct aws_client *c, const struct aws_creds *as,
    const char *region, json_t *request, json_t **response, struct aws_error *err);
/* Succeeds for a session that already ended (AWS does too). */
enum el_err aws_ssm_terminate_session(struct aws_client *c, const struct aws_creds *as,
    const char *region, const char *session_id, struct aws_error *err);

/* EC2 DescribeInstances, all pages: ids of instances carrying every tag in tags (a JSON
 * object key -> string, borrowed). *ids: caller frees (el_strv_free). */
/* Every Active session in the region, grouped: {"OWNER_ARN": ["SESSION_ID", ...]}. One
 * paginated DescribeSessions serves a whole reaper sweep. *out: caller decrefs. */
enum el_err aws_ssm_active_sessions_by_owner(struct aws_client *c, const struct aws_creds *as,
    const char *region, json_t **out, struct aws_error *err);

enum el_err aws_ec2_instances_with_tags(struct aws_client *c, const struct aws_creds *as,
    const char *region, json_t *tags, char ***ids, size_t *n, struct aws_error *err);
/* A read-only EC2 call ("DescribeRegions", or one page of five "DescribeInstances")
 * whose answer is thrown away: EL_OK when AWS allowed it, else err says why (a refusal
 * has code AccessDenied, UnauthorizedOperation, ExpiredToken ...). */
enum el_err aws_ec2_probe(struct aws_client *c, const struct aws_creds *as,
    const char *region, const char *action, struct aws_error *err);

/*
 * S3, broker credentials, path-style (https://s3.REGION.amazonaws.com/BUCKET/KEY).
 * PutObject with Content-MD5 and, when lock_mode is set, Object Lock headers
 * (x-amz-object-lock-mode, x-amz-object-lock-retain-until-date = retain_until, ISO 8601).
 * GetObject appends the object to out (its ceiling bounds it; EL_ETOOBIG beyond);
 * NoSuchKey is EL_ENOENT.
 */
enum el_err aws_s3_put_object(struct aws_client *c, const char *bucket, const char *key,
    const void *body, size_t len, const char *content_type, const char *lock_mode,
    const char *retain_until, struct aws_error *err);
enum el_err aws_s3_get_object(struct aws_client *c, const char *bucket, const char *key,
    struct dbuf *out, struct aws_error *err);

/*
 * The AWS console for role credentials as (with a session token): a sign-in token from the
 * federation endpoint, then *url (malloc'd; a secret for 15 minutes: wipe it) =
 * ENDPOINT/federation?Action=login&Issuer=issuer&Destination=destination&SigninToken=….
 */
enum el_err aws_signin_url(struct aws_client *c, const struct aws_creds *as,
    const char *issuer, const char *destination, char **url, struct aws_error *err);

/* Frees an id list returned above. */

/*
 * Metrics hook: called once per API call, after its last attempt (fn may be NULL).
 * outcome: "ok", the AWS error code, "network" (no answer / timeout) or
 * "invalid-response" (unparseable or oversized answer). Called from the calling thread.
 */
typedef void (*aws_call_observer)(void *arg, const char *service, const char *action,
    const char *outcome, double seconds);
void aws_client_set_observer(struct aws_client *c, aws_call_observer fn, void *arg);

#endif
