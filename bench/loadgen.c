/*
 * loadgen.c — make bench's HTTP load generator: C connections on raw non-blocking
 * sockets driven by one epoll loop, HTTP/1.1 keep-alive, one request in flight per
 * connection. With -k KEY -u USER every request is signed with libelevate's reqsig
 * functions and a fresh nonce, all of them BEFORE the timed phase (the generator then only
 * writes prepared bytes and parses status lines). Prints one line:
 *   rps=.. p50_ms=.. p99_ms=.. ok=N errors=N seconds=.. codes=STATUS:N,...
 * (ok: 2xx answers; errors: anything else; status 0 counts dropped connections).
 *
 * loadgen -c CONNS -d SECONDS [-n MAXREQ] [-k KEYFILE -u USER] [-m METHOD] [-b BODY]
 *         PORT PATH [PATH ...]          (127.0.0.1; paths are used in turn)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "elevate/el.h"
#include "elevate/reqsig.h"

#define RBUF (4 * 1024 * 1024)

struct conn {
	int fd;
	char *rbuf;
	size_t rlen;
	const char *wp;          /* request being written */
	size_t wleft;
	double started;          /* when its request was sent */
};

static char **reqs;          /* prepared requests */
static size_t *reqlen;
static size_t nreq, next_req;
static double *lat;          /* seconds per answered request */
static size_t nlat, cap_lat;
static unsigned long ok, errs, codes[600];   /* codes[0]: dropped connections */
static int presigned;        /* every request used once */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
	perror(what);
	exit(2);
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	static char buf[512];
	size_t n;

	if (f == NULL)
		die(path);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return buf;
}

static void
prepare(int port, const char *method, const char *body, char **paths, int npaths,
    const char *keyfile, const char *user, size_t n)
{
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	size_t blen = body ? strlen(body) : 0, i, sklen;
	char date[32], nonce[32], sig[REQSIG_SIG_B64_MAX], buf[4096];
	time_t t = time(NULL);
	int len;

	if (keyfile) {
		const char *b64 = slurp(keyfile);

		if (sodium_base642bin(sk, sizeof(sk), b64, strlen(b64), NULL, &sklen, NULL,
		    sodium_base64_VARIANT_ORIGINAL) != 0 || sklen != sizeof(sk)) {
			fprintf(stderr, "loadgen: %s is not a base64 Ed25519 secret key\n", keyfile);
			exit(2);
		}
	}
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	nreq = keyfile ? n : (size_t)npaths;
	presigned = keyfile != NULL;
	reqs = calloc(nreq, sizeof(*reqs));
	reqlen = calloc(nreq, sizeof(*reqlen));
	if (reqs == NULL || reqlen == NULL)
		die("calloc");
	for (i = 0; i < nreq; i++) {
		const char *path = paths[i % npaths];
		char auth[1024] = "";

		if (keyfile) {
			struct reqsig_fields f = {method, path, date, nonce, user, body ? body : "",
			    blen};

			reqsig_nonce(nonce, sizeof(nonce));
			if (reqsig_sign(sk, &f, sig, sizeof(sig)) != EL_OK) {
				fprintf(stderr, "loadgen: signing failed\n");
				exit(2);
			}
			snprintf(auth, sizeof(auth), "X-Elevate-User: %s\r\nX-Elevate-Date: %s\r\n"
			    "X-Elevate-Nonce: %s\r\nX-Elevate-Signature: %s\r\n", user, date, nonce, sig);
		}
		len = snprintf(buf, sizeof(buf), "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s"
		    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", method, path,
		    port, auth, blen, body ? body : "");
		if (len < 0 || (size_t)len >= sizeof(buf)) {
			fprintf(stderr, "loadgen: request too long\n");
			exit(2);
		}
		if ((reqs[i] = strdup(buf)) == NULL)
			die("strdup");
		reqlen[i] = (size_t)len;
	}
	sodium_memzero(sk, sizeof(sk));
}

static int
dial(int ep, int port, struct conn *c)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
	int one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0)
		die("socket");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		die("connect");
	c->rlen = 0;
	c->wp = NULL;
	return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Starts the next request on c; 0 when there is none left. */
static int
start(struct conn *c)
{
	size_t i;

	if (presigned && next_req >= nreq)
		return 0;
	i = presigned ? next_req++ : next_req++ % nreq;
	c->wp = reqs[i];
	c->wleft = reqlen[i];
	c->started = now();
	return 1;
}

static void
record(double dt, int status)
{
	if (status >= 200 && status < 300)
		ok++;
	else
		errs++;
	codes[status >= 0 && status < 600 ? status : 0]++;
	if (nlat == cap_lat) {
		cap_lat = cap_lat ? cap_lat * 2 : 65536;
		if ((lat = realloc(lat, cap_lat * sizeof(*lat))) == NULL)
			die("realloc");
	}
	lat[nlat++] = dt;
}

/* A whole answer in c->rbuf: its length, 0 when incomplete, -1 when not understood. */
static long
answer_len(struct conn *c, int *status, int *close_after)
{
	char *end, *p;
	long cl = -1;

	c->rbuf[c->rlen] = '\0';
	if ((end = strstr(c->rbuf, "\r\n\r\n")) == NULL)
		return 0;
	if (sscanf(c->rbuf, "HTTP/1.%*d %d", status) != 1)
		return -1;
	*close_after = 0;
	for (p = strstr(c->rbuf, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
			cl = strtol(p + 17, NULL, 10);
		else if (strncasecmp(p + 2, "Connection: close", 17) == 0)
			*close_after = 1;
		else if (strncasecmp(p + 2, "Transfer-Encoding:", 18) == 0)
			return -1;
	}
	if (cl < 0)
		return -1;
	if ((size_t)(end + 4 - c->rbuf) + (size_t)cl > c->rlen)
		return 0;
	return (end + 4 - c->rbuf) + cl;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double p)
{
	size_t k;

	if (nlat == 0)
		return 0;
	k = (size_t)(p / 100.0 * nlat + 0.5);
	k = k == 0 ? 0 : k - 1;
	return lat[k < nlat ? k : nlat - 1] * 1000.0;
}

int
main(int argc, char **argv)
{
	const char *keyfile = NULL, *user = NULL, *method = "GET", *body = NULL;
	int conns = 1, ch, ep, port, live, i;
	double secs = 3, t0, t1, deadline;
	size_t maxreq = 50000;
	struct conn *cs;
	struct epoll_event evs[256];

	while ((ch = getopt(argc, argv, "c:d:n:k:u:m:b:")) != -1) {
		switch (ch) {
		case 'c': conns = atoi(optarg); break;
		case 'd': secs = atof(optarg); break;
		case 'n': maxreq = strtoul(optarg, NULL, 10); break;
		case 'k': keyfile = optarg; break;
		case 'u': user = optarg; break;
		case 'm': method = optarg; break;
		case 'b': body = optarg; break;
		default: goto usage;
		}
	}
	if (argc - optind < 2 || conns < 1 || (keyfile == NULL) != (user == NULL))
		goto usage;
	if (sodium_init() < 0)
		die("sodium_init");
	port = atoi(argv[optind]);
	prepare(port, method, body, argv + optind + 1, argc - optind - 1, keyfile, user, maxreq);

	if ((ep = epoll_create1(0)) < 0 || (cs = calloc(conns, sizeof(*cs))) == NULL)
		die("epoll");
	t0 = now();
	deadline = t0 + secs;
	for (i = 0; i < conns; i++) {
		if ((cs[i].rbuf = malloc(RBUF + 1)) == NULL || dial(ep, port, &cs[i]) < 0)
			die("dial");
		start(&cs[i]);
	}
	live = conns;
	while (live > 0) {
		int n = epoll_wait(ep, evs, 256, 100);

		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int status, close_after, again = 1;
			long len;
			ssize_t r;

			if (c->fd < 0)
				continue;
			while (again) {
				again = 0;
				while (c->wp && c->wleft > 0) {
					if ((r = write(c->fd, c->wp, c->wleft)) < 0)
						break;
					c->wp += r;
					c->wleft -= (size_t)r;
				}
				while ((r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen)) > 0)
					c->rlen += (size_t)r;
				if (c->wp == NULL && r == 0)
					goto closed;
				if (c->wp == NULL)
					continue;
				len = answer_len(c, &status, &close_after);
				if (len < 0 || (len == 0 && (r == 0 || c->rlen == RBUF))) {
					record(now() - c->started, 0);
					goto reconnect;
				}
				if (len == 0)
					continue;
				record(now() - c->started, status);
				memmove(c->rbuf, c->rbuf + len, c->rlen - (size_t)len);
				c->rlen -= (size_t)len;
				c->wp = NULL;
				if (close_after || r == 0)
					goto reconnect;
				if (now() < deadline && start(c))
					again = 1;
				else
					goto closed;
			}
			continue;
reconnect:
			close(c->fd);
			c->fd = -1;
			if (now() < deadline && dial(ep, port, c) == 0 && start(c))
				continue;
closed:
			if (c->fd >= 0)
				close(c->fd);
			c->fd = -1;
			c->wp = NULL;
			live--;
		}
	}
	t1 = now();
	qsort(lat, nlat, sizeof(*lat), cmp);
	printf("rps=%.0f p50_ms=%.2f p99_ms=%.2f ok=%lu errors=%lu seconds=%.2f codes=",
	    (ok + errs) / (t1 - t0), pct(50), pct(99), ok, errs, t1 - t0);
	for (i = 0, ch = 0; i < 600; i++)
		if (codes[i])
			printf("%s%d:%lu", ch++ ? "," : "", i, codes[i]);
	printf("\n");
	if (presigned && next_req >= nreq)
		fprintf(stderr, "loadgen: all %zu presigned requests used before %.1f s: raise -n\n",
		    nreq, secs);
	return 0;
usage:
	fprintf(stderr, "usage: loadgen -c CONNS -d SECONDS [-n MAXREQ] [-k KEYFILE -u USER] "
	    "[-m METHOD] [-b BODY] PORT PATH [PATH ...]\n");
	return 2;
}
