/*
 * bare.c — make bench's baseline HTTP server: libmicrohttpd with an internal epoll thread
 * pool of 2 answering every request with the same small JSON body, nothing else. What the
 * broker's API figures are divided by.
 *   bare PORTFILE      (listens on 127.0.0.1, an ephemeral port written to PORTFILE;
 *                       runs until SIGTERM)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

static char body[] = "{\"id\":\"r-bench\",\"state\":\"pending\",\"profile\":\"bench\"}";
static struct MHD_Response *resp;

static enum MHD_Result
answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *data, size_t *len, void **ctx)
{
	(void)cls; (void)url; (void)method; (void)version; (void)data;
	if (*ctx == NULL) {          /* headers only: wait for the body, if any */
		*ctx = c;
		return MHD_YES;
	}
	if (*len) {
		*len = 0;
		return MHD_YES;
	}
	return MHD_queue_response(c, MHD_HTTP_OK, resp);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	struct MHD_Daemon *d;
	sigset_t set;
	FILE *f;
	int fd, one = 1, sig;

	if (argc != 2) {
		fprintf(stderr, "usage: bare PORTFILE\n");
		return 2;
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		perror("bare: listen");
		return 1;
	}
	resp = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC, 0, NULL, NULL, answer,
	    NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE, 2u,
	    MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "bare: MHD_start_daemon failed\n");
		return 1;
	}
	if ((f = fopen(argv[1], "w")) == NULL) {
		perror(argv[1]);
		return 1;
	}
	fprintf(f, "%d\n", ntohs(sa.sin_port));
	fclose(f);
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	MHD_destroy_response(resp);
	return 0;
}
