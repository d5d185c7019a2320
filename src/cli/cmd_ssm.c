/*
 * cmd_ssm.c — `elevate ssm ID|--profile P INSTANCE`: has the broker start an SSM session
 * with the grant's credentials (POST /v1/requests/{id}/sessions; the broker checks the
 * target and document against the profile and records the session for the reaper), then
 * runs session-manager-plugin exactly as the AWS CLI's `aws ssm start-session` does:
 * same argv, same JSON text, same signal handling, the response in
 * AWS_SSM_START_SESSION_RESPONSE for plugins newer than 1.2.497.0.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "elevate/el.h"
#include "api.h"
#include "commands.h"
#include "output.h"

#define PLUGIN_NAME "session-manager-plugin"
#define PLUGIN_INSTALL_URL \
	"https://docs.aws.amazon.com/systems-manager/latest/userguide/" \
	"session-manager-working-with-install-plugin.html"
#define PLUGIN_ENV_RESPONSE "AWS_SSM_START_SESSION_RESPONSE"
/* The AWS CLI passes the response in the environment to plugins newer than this. */
#define PLUGIN_LAST_ARGV_VERSION "1.2.497.0"
#define VERSION_OUT_MAX 256          /* bytes of `--version` output we look at */
#define VERSION_TIMEOUT_MS 10000
#define TARGET_MAX 64                /* the broker's limits (engine_aws.c session_spec) */
#define DOCUMENT_MAX 128
#define REASON_MAX_CHARS 256
#define PARAMS_MAX 20
#define PARAM_KEY_MAX 128
#define PARAM_VALUE_MAX 4096
#define NAME_MAX_LEN 100
#define EXEC_FAILED 127

static int ssm_run(int, char **);

const struct cli_cmd cmd_ssm = {
	.name = "ssm",
	.usage = "elevate ssm ID|--profile PROFILE|BUNDLE --profile PROFILE INSTANCE "
	    "[--document D] [--param K=V ...] [--reason R]",
	.summary = "open an SSM session to an instance with a grant",
	.run = ssm_run,
};

static void
ssm_help(void)
{
	printf("usage: %s\n\n"
	    "Asks the broker to start an SSM Session Manager session to INSTANCE with the\n"
	    "credentials of your active grant ID (or, with --profile, of your active grant of\n"
	    "PROFILE; with a bundle's id and --profile, that member's); the profile must\n"
	    "allow the instance and the document. Then runs\n"
	    "%s as `aws ssm start-session` does, with the grant's\n"
	    "credentials in its environment. The session ends when you leave it, or at the\n"
	    "latest when the grant's window ends. The exit code is the plugin's.\n\n"
	    "  --document D    the SSM document (default: the profile's first)\n"
	    "  --param K=V     a document parameter; repeat a key for a list\n"
	    "  --reason R      the session's reason in SSM (default: the request id)\n\n"
	    "  elevate ssm req_7kq2m4x9bd3h i-0123456789abcdef0\n"
	    "  elevate ssm --profile prod-readonly i-0123456789abcdef0 \\\n"
	    "      --document AWS-StartPortForwardingSession \\\n"
	    "      --param portNumber=80 --param localPortNumber=8080\n\n"
	    "environment:\n"
	    "  ELEVATE_SSM_PLUGIN  the plugin to run (default: %s on PATH)\n",
	    cmd_ssm.usage, PLUGIN_NAME, PLUGIN_NAME);
}

static int
printable(const char *s, size_t max)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f)
			return 0;
	return n > 0 && n <= max;
}

/* Adds "K=V" to params: {K: [V, ...]}, a repeated key appending. */
static int
add_param(json_t *params, const char *kv)
{
	const char *eq = strchr(kv, '=');
	char key[PARAM_KEY_MAX + 1];
	json_t *arr, *v;
	size_t klen;

	if (eq == NULL || eq == kv)
		return output_usage(&cmd_ssm, "--param: expected K=V, got \"%s\"", kv);
	klen = (size_t)(eq - kv);
	if (klen > PARAM_KEY_MAX)
		return output_usage(&cmd_ssm, "--param: a name is at most %d characters",
		    PARAM_KEY_MAX);
	memcpy(key, kv, klen);
	key[klen] = '\0';
	if (!printable(key, PARAM_KEY_MAX) || strlen(eq + 1) > PARAM_VALUE_MAX)
		return output_usage(&cmd_ssm, "--param %s: a printable name and a value of at "
		    "most %d bytes", key, PARAM_VALUE_MAX);
	if ((v = json_string(eq + 1)) == NULL)
		return output_usage(&cmd_ssm, "--param %s: the value must be valid UTF-8", key);
	if ((arr = json_object_get(params, key)) == NULL) {
		if (json_object_size(params) >= PARAMS_MAX) {
			json_decref(v);
			return output_usage(&cmd_ssm, "at most %d different --param names",
			    PARAMS_MAX);
		}
		if ((arr = json_array()) == NULL || json_object_set_new(params, key, arr) != 0) {
			json_decref(v);
			return output_usage(&cmd_ssm, "--param %s: not a valid name", key);
		}
	}
	if (json_array_append_new(arr, v) != 0)
		return CLI_ERR;
	return CLI_OK;
}

/*
 * JSON text exactly as Python's json.dumps() writes it (what the AWS CLI hands the
 * plugin): ", " and ": " separators, key order kept, non-ASCII as \uXXXX. jansson
 * writes the same except for upper-case hex digits and a raw DEL, fixed here.
 * Caller frees; NULL when out of memory.
 */
static char *
dumps_like_python(const json_t *j)
{
	char *s, *out;
	size_t i, o, n, ndel = 0;

	if ((s = json_dumps(j, JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER)) == NULL)
		return NULL;
	n = strlen(s);
	for (i = 0; i < n; i++)
		if (s[i] == 0x7f)
			ndel++;
	if ((out = malloc(n + ndel * 5 + 1)) == NULL) {
		free(s);
		return NULL;
	}
	for (i = o = 0; i < n; i++) {
		if (s[i] == 0x7f) {
			memcpy(out + o, "\\u007f", 6);
			o += 6;
		} else if (s[i] == '\\' && i + 1 < n) {
			out[o++] = s[i++];
			out[o++] = s[i];
			if (s[i] == 'u' && i + 4 < n) {
				size_t k;
				for (k = 0; k < 4; k++) {
					char c = s[++i];
					out[o++] = c >= 'A' && c <= 'F' ? (char)(c - 'A' + 'a') : c;
				}
			}
		} else
			out[o++] = s[i];
	}
	out[o] = '\0';
	free(s);
	return out;
}

/*
 * Finds the plugin: $ELEVATE_SSM_PLUGIN (a path, or a name looked up on PATH), else
 * session-manager-plugin on PATH, as execvp() would. 0 with the path in buf, or -1.
 */
static int
find_plugin(char *buf, size_t len)
{
	const char *name = PLUGIN_NAME, *e, *path, *p, *colon;
	struct stat st;
	size_t dlen;
	int n;

	if ((e = getenv("ELEVATE_SSM_PLUGIN")) != NULL && *e != '\0')
		name = e;
	if (strchr(name, '/') != NULL) {
		if ((size_t)snprintf(buf, len, "%s", name) >= len)
			return -1;
		return stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0 ?
		    0 : -1;
	}
	if ((path = getenv("PATH")) == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path;; p = colon + 1) {
		colon = strchr(p, ':');
		dlen = colon != NULL ? (size_t)(colon - p) : strlen(p);
		/* an empty PATH entry is the current directory */
		n = dlen == 0 ? snprintf(buf, len, "./%s", name) :
		    snprintf(buf, len, "%.*s/%s", (int)dlen, p, name);
		if (n > 0 && (size_t)n < len && stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(buf, X_OK) == 0)
			return 0;
		if (colon == NULL)
			return -1;
	}
}

/*
 * The AWS CLI's test of `session-manager-plugin --version` output: whitespace removed,
 * 1 to 4 dot-separated numbers, compared after padding with zeros. 1 when v is a
 * version strictly newer than min, 0 otherwise (garbage included).
 */
static int
version_newer(const char *v, const char *min)
{
	long long a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
	char clean[VERSION_OUT_MAX + 1], *p, *end;
	size_t n = 0, i;
	const char *s;

	for (s = v; *s != '\0' && n < sizeof(clean) - 1; s++)
		if (strchr(" \t\n\r\f\v", *s) == NULL)
			clean[n++] = *s;
	clean[n] = '\0';
	for (p = clean, i = 0;; i++) {
		if (i >= 4 || *p < '0' || *p > '9')
			return 0;
		errno = 0;
		a[i] = strtoll(p, &end, 10);
		if (errno != 0)
			return 0;
		p = end;
		if (*p == '\0')
			break;
		if (*p++ != '.')
			return 0;
	}
	for (s = min, i = 0; i < 4 && *s != '\0'; i++) {
		b[i] = strtoll(s, &end, 10);
		s = *end == '.' ? end + 1 : end;
	}
	for (i = 0; i < 4; i++)
		if (a[i] != b[i])
			return a[i] > b[i];
	return 0;
}

static long
ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/*
 * Runs `plugin --version` and says whether the plugin takes the response from the
 * environment. Any failure (cannot run, non-zero exit, too slow, garbage) means no: the
 * older argv form works with every plugin.
 */
static int
plugin_wants_env(const char *plugin)
{
	char out[VERSION_OUT_MAX + 1];
	struct timespec deadline;
	struct pollfd pfd;
	size_t n = 0;
	ssize_t r;
	pid_t pid;
	int fds[2], status, devnull, ok = 1;
	long left;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return 0;
	if ((pid = fork()) < 0) {
		close(fds[0]);
		close(fds[1]);
		return 0;
	}
	if (pid == 0) {
		if (dup2(fds[1], STDOUT_FILENO) < 0)
			_exit(EXEC_FAILED);
		if ((devnull = open("/dev/null", O_RDWR)) >= 0) {
			dup2(devnull, STDIN_FILENO);
			dup2(devnull, STDERR_FILENO);
		}
		execl(plugin, PLUGIN_NAME, "--version", (char *)NULL);
		_exit(EXEC_FAILED);
	}
	close(fds[1]);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += VERSION_TIMEOUT_MS / 1000;
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	for (;;) {
		if ((left = ms_left(&deadline)) <= 0) {
			ok = 0;
			break;
		}
		if (poll(&pfd, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			ok = 0;
			break;
		}
		r = read(fds[0], out + n, sizeof(out) - 1 - n);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			break;
		if ((n += (size_t)r) >= sizeof(out) - 1) {
			ok = 0;          /* far longer than any version: garbage */
			break;
		}
	}
	close(fds[0]);
	if (!ok)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	out[n] = '\0';
	return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    version_newer(out, PLUGIN_LAST_ARGV_VERSION);
}

/*
 * Runs the plugin and waits for it with SIGINT, SIGQUIT and SIGTSTP ignored here (they
 * are the plugin's to handle: Ctrl-C goes to the remote shell), as the AWS CLI does.
 * Returns its exit code (128 + signal when killed), EXEC_FAILED when it cannot run.
 */
static int
run_plugin(const char *plugin, char *const *pargv)
{
	static const int sigs[] = {SIGINT, SIGQUIT, SIGTSTP};
	struct sigaction ign, dfl, old[3];
	pid_t pid;
	size_t i;
	int status, rc;

	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	dfl = ign;
	dfl.sa_handler = SIG_DFL;
	for (i = 0; i < 3; i++)
		sigaction(sigs[i], &ign, &old[i]);
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0) {
		output_err("cannot start %s: %s", plugin, strerror(errno));
		rc = EXEC_FAILED;
		goto out;
	}
	if (pid == 0) {
		for (i = 0; i < 3; i++)
			sigaction(sigs[i], &dfl, NULL);
		execv(plugin, pargv);
		output_err("cannot run %s: %s", plugin, strerror(errno));
		_exit(EXEC_FAILED);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			output_err("waiting for %s: %s", plugin, strerror(errno));
			rc = CLI_ERR;
			goto out;
		}
	}
	if (WIFEXITED(status))
		rc = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		rc = 128 + WTERMSIG(status);
	else
		rc = CLI_ERR;
out:
	for (i = 0; i < 3; i++)
		sigaction(sigs[i], &old[i], NULL);
	return rc;
}

/* Ends a session nobody will use; says so when even that fails. */
static int
terminate(struct api *a, const char *rid, const char *sid)
{
	struct api_error e;
	char path[512];
	json_t *body, *res = NULL;
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "/v1/requests/%s/sessions/%s/terminate", rid,
	    sid) >= sizeof(path) || (body = json_object()) == NULL)
		return CLI_ERR;
	rc = api_call(a, "POST", path, body, &res, &e);
	json_decref(body);
	json_decref(res);
	if (rc != CLI_OK) {
		api_perror(&e);
		output_err("the session %s could not be terminated: it ends with the grant's "
		    "window", sid);
	}
	return rc;
}

static int
ssm_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"profile", required_argument, NULL, 'p'},
		{"document", required_argument, NULL, 'd'},
		{"param", required_argument, NULL, 'P'},
		{"reason", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *profile = NULL, *id = NULL, *target, *doc = NULL, *reason = NULL;
	const char *sid, *region, *endpoint;
	char creg[64], rid[72], path[128], plugin[PATH_MAX], ep[512];
	char *resp_s = NULL, *req_s = NULL;
	char *pargv[8];
	struct api *a = NULL;
	json_t *params = NULL, *body = NULL, *c = NULL, *res = NULL, *resp = NULL;
	int ch, rc;

	if ((params = json_object()) == NULL)
		return CLI_ERR;
	while ((ch = getopt_long(argc, argv, "p:d:P:r:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'p': profile = optarg; break;
		case 'd': doc = optarg; break;
		case 'P':
			if ((rc = add_param(params, optarg)) != CLI_OK)
				goto out;
			break;
		case 'r': reason = optarg; break;
		case 'h': ssm_help(); rc = CLI_OK; goto out;
		default: rc = output_usage(&cmd_ssm, NULL); goto out;
		}
	}
	if ((profile == NULL && optind < argc) || argc - optind == 2)
		id = argv[optind++];   /* ID INSTANCE, or BUNDLE INSTANCE with --profile */
	if (argc - optind != 1) {
		rc = output_usage(&cmd_ssm, profile == NULL ? "give a request ID (or --profile "
		    "PROFILE) and an INSTANCE" : "give one INSTANCE after --profile PROFILE");
		goto out;
	}
	target = argv[optind];
	rc = CLI_USAGE;
	if (id != NULL && !api_valid_id(id))
		rc = output_usage(&cmd_ssm, "not a request id: \"%s\"", id);
	else if (id != NULL && profile != NULL && !api_bundle_id(id))
		rc = output_usage(&cmd_ssm, "give a request ID, --profile PROFILE, or a bundle's "
		    "ID with --profile PROFILE");
	else if (profile != NULL && !printable(profile, NAME_MAX_LEN))
		rc = output_usage(&cmd_ssm, "not a profile name: \"%s\"", profile);
	else if (!printable(target, TARGET_MAX))
		rc = output_usage(&cmd_ssm, "not an instance: \"%s\"", target);
	else if (doc != NULL && !printable(doc, DOCUMENT_MAX))
		rc = output_usage(&cmd_ssm, "--document: at most %d printable characters",
		    DOCUMENT_MAX);
	else if (reason != NULL && output_width(reason) > REASON_MAX_CHARS)
		rc = output_usage(&cmd_ssm, "--reason: at most %d characters", REASON_MAX_CHARS);
	else
		rc = CLI_OK;
	if (rc != CLI_OK)
		goto out;
	if ((body = json_object()) == NULL ||
	    json_object_set_new(body, "target", json_string(target)) != 0 ||
	    (doc != NULL && json_object_set_new(body, "document", json_string(doc)) != 0) ||
	    (json_object_size(params) > 0 &&
	    json_object_set(body, "parameters", params) != 0) ||
	    (reason != NULL && json_object_set_new(body, "reason", json_string(reason)) != 0)) {
		rc = output_usage(&cmd_ssm, "arguments must be valid UTF-8 text");
		goto out;
	}

	if ((rc = api_open(&a)) != CLI_OK)
		goto out;
	/* The credentials first: no session is started for a grant we cannot use. */
	if ((rc = creds_get(a, id, profile, &c, creg, sizeof(creg), rid, sizeof(rid))) != CLI_OK)
		goto out;
	snprintf(path, sizeof(path), "/v1/requests/%s/sessions", rid);
	if ((rc = api_do(a, "POST", path, body, &res)) != CLI_OK)
		goto out;
	sid = output_str(res, "SessionId");
	if (sid == NULL || output_str(res, "TokenValue") == NULL ||
	    output_str(res, "StreamUrl") == NULL || !json_is_object(json_object_get(res,
	    "Request"))) {
		output_err("the broker's answer has no SessionId, TokenValue, StreamUrl and "
		    "Request");
		if (sid != NULL)
			terminate(a, rid, sid);
		rc = CLI_ERR;
		goto out;
	}
	if ((region = output_str(res, "Region")) == NULL)
		region = creg;
	if ((endpoint = output_str(res, "EndpointUrl")) == NULL) {
		snprintf(ep, sizeof(ep), "https://ssm.%s.amazonaws.com", region);
		endpoint = ep;
	}
	if (find_plugin(plugin, sizeof(plugin)) != 0) {
		rc = terminate(a, rid, sid);
		output_err(PLUGIN_NAME " not found on PATH: install it from " PLUGIN_INSTALL_URL
		    " (Debian/Ubuntu: the session-manager-plugin .deb); the session %s %s", sid,
		    rc == CLI_OK ? "was terminated" : "is still open");
		rc = CLI_ERR;
		goto out;
	}
	/* What botocore's start_session() returns, minus ResponseMetadata, in its order. */
	resp = json_pack("{s:s, s:s, s:s}", "SessionId", sid, "TokenValue",
	    output_str(res, "TokenValue"), "StreamUrl", output_str(res, "StreamUrl"));
	if (resp == NULL || (resp_s = dumps_like_python(resp)) == NULL ||
	    (req_s = dumps_like_python(json_object_get(res, "Request"))) == NULL) {
		output_err("out of memory");
		terminate(a, rid, sid);
		rc = CLI_ERR;
		goto out;
	}
	/* The grant's credentials and region for the plugin, which may call SSM itself. */
	if (creds_setenv(c, region, NULL) != 0) {
		output_err("cannot set the environment: %s", strerror(errno));
		terminate(a, rid, sid);
		rc = CLI_ERR;
		goto out;
	}
	creds_wipe(c);
	json_decref(c);
	c = NULL;
	pargv[0] = (char *)(uintptr_t)PLUGIN_NAME;
	pargv[1] = resp_s;
	if (plugin_wants_env(plugin)) {
		if (setenv(PLUGIN_ENV_RESPONSE, resp_s, 1) != 0) {
			output_err("cannot set the environment: %s", strerror(errno));
			terminate(a, rid, sid);
			rc = CLI_ERR;
			goto out;
		}
		pargv[1] = (char *)(uintptr_t)PLUGIN_ENV_RESPONSE;
	} else
		unsetenv(PLUGIN_ENV_RESPONSE);
	pargv[2] = (char *)(uintptr_t)region;
	pargv[3] = (char *)(uintptr_t)"StartSession";
	pargv[4] = (char *)(uintptr_t)"";     /* no profile: the credentials are in the env */
	pargv[5] = req_s;
	pargv[6] = (char *)(uintptr_t)endpoint;
	pargv[7] = NULL;
	rc = run_plugin(plugin, pargv);
out:
	if (c != NULL) {
		creds_wipe(c);
		json_decref(c);
	}
	if (resp_s != NULL) {
		sodium_memzero(resp_s, strlen(resp_s));     /* holds the session's token */
		free(resp_s);
	}
	free(req_s);
	json_decref(resp);
	json_decref(res);
	json_decref(body);
	json_decref(params);
	api_close(a);
	return rc;
}
