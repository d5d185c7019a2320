/*
 * parent.c — the parent process (proc.h): reads the configuration, binds the listener,
 * starts the engine and, once it is ready, the front; gives them a new link (a
 * socketpair, one end to each over their control sockets) whenever one of them starts;
 * restarts a child that dies; forwards SIGHUP to the engine (reload the policies) and on
 * SIGTERM stops the front (it drains its requests), then the engine.
 *
 * It holds no secret it does not start with (its environment: the broker's AWS
 * credentials, handed to the engine only) and reads nothing from the network.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "elevate/config.h"
#include "frame.h"
#include "http.h"
#include "proc.h"

extern char **environ;

struct child {
	const char *role;          /* "engine", "front" */
	pid_t pid;                 /* 0: not running */
	int ctl;                   /* our end of its control socket, -1 */
	int ready;
	int64_t started_ms, restart_at_ms;
	int quick_deaths;          /* deaths soon after a start, in a row */
};

struct parent {
	const char *config_path, *level;
	int listen_fd;
	struct child engine, front;
	int up;                    /* both have been ready once */
	int stopping;
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The front's environment: ours without a single AWS variable. */
static char **
front_env(void)
{
	size_t n = 0, i, j = 0;
	char **env;

	while (environ[n] != NULL)
		n++;
	if ((env = calloc(n + 1, sizeof(*env))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "AWS_", 4) != 0)
			env[j++] = environ[i];
	return env;
}

static enum el_err
spawn(struct parent *p, struct child *c)
{
	int sv[2], is_front = c == &p->front;
	char ctl_arg[16], listen_arg[16];
	const char *argv[12];
	char **env = is_front ? front_env() : environ;
	size_t n = 0;
	pid_t parent_pid = getpid(), pid;
	int ctl, lfd;
	sigset_t none;

	if (env == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		if (is_front)
			free(env);
		return EL_EIO;
	}
	snprintf(ctl_arg, sizeof(ctl_arg), "%d", 3);
	snprintf(listen_arg, sizeof(listen_arg), "%d", 4);
	argv[n++] = "elevated";
	argv[n++] = is_front ? "--front" : "--engine";
	argv[n++] = "--config";
	argv[n++] = p->config_path;
	argv[n++] = "--ctl-fd";
	argv[n++] = ctl_arg;
	if (is_front) {
		argv[n++] = "--listen-fd";
		argv[n++] = listen_arg;
	}
	if (p->level != NULL) {
		argv[n++] = "--log-level";
		argv[n++] = p->level;
	}
	argv[n] = NULL;
	if ((pid = fork()) < 0) {
		close(sv[0]);
		close(sv[1]);
		if (is_front)
			free(env);
		return EL_EIO;
	}
	if (pid == 0) {
		/* The child: dies with us, and starts afresh from the executable. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent_pid)
			_exit(1);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Out of the way first, then into place: dup2 leaves the copies open at exec. */
		ctl = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
		lfd = is_front ? fcntl(p->listen_fd, F_DUPFD_CLOEXEC, 10) : -1;
		if (ctl < 0 || dup2(ctl, 3) < 0 || (is_front && (lfd < 0 || dup2(lfd, 4) < 0)))
			_exit(1);
		execve("/proc/self/exe", (char *const *)(uintptr_t)argv, env);
		_exit(127);
	}
	close(sv[1]);
	if (is_front)
		free(env);
	c->pid = pid;
	c->ctl = sv[0];
	c->ready = 0;
	c->started_ms = now_ms();
	c->restart_at_ms = 0;
	log_debug("started the %s (pid %d)", c->role, (int)pid);
	return EL_OK;
}

/* Both ready: a new socketpair, one end to each. */
static void
link_children(struct parent *p)
{
	int sv[2];

	if (!p->engine.ready || !p->front.ready)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		log_err("cannot link the front and the engine: %s", strerror(errno));
		return;
	}
	if (frame_send(p->engine.ctl, CTL_LINK, 0, NULL, 0, sv[0]) != EL_OK ||
	    frame_send(p->front.ctl, CTL_LINK, 0, NULL, 0, sv[1]) != EL_OK)
		log_warn("a child went away while it was being linked");
	close(sv[0]);
	close(sv[1]);
}

static void
on_ctl(struct parent *p, struct child *c)
{
	struct el_why w = {{0}};
	struct frame f;

	if (frame_recv(c->ctl, &f, &w) != EL_OK) {
		close(c->ctl);   /* it is dying: SIGCHLD follows */
		c->ctl = -1;
		return;
	}
	if (!frame_accepts(FR_PARENT, f.type, 0) || (f.type == CTL_BADPEER && c != &p->engine)) {
		log_err("the %s sent a control message of type %#x: stopping it", c->role, f.type);
		kill(c->pid, SIGKILL);
	} else if (f.type == CTL_READY) {
		c->ready = 1;
		log_debug("the %s is ready", c->role);
		link_children(p);
	} else if (f.type == CTL_BADPEER && p->front.pid > 0) {
		log_err("the engine says the front broke the protocol: restarting the front");
		kill(p->front.pid, SIGKILL);
	}
	frame_free(&f);
}

static const char *
how(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)%s", WTERMSIG(status),
		    strsignal(WTERMSIG(status)), WTERMSIG(status) == SIGSYS ?
		    ": a system call outside its seccomp allowlist" : "");
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	return buf;
}

/* Reaps the children. Returns -1 when the broker cannot go on (a child died before it
 * was ever ready). */
static int
reap(struct parent *p)
{
	struct child *c;
	char buf[128];
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		c = pid == p->engine.pid ? &p->engine : pid == p->front.pid ? &p->front : NULL;
		if (c == NULL)
			continue;
		c->pid = 0;
		if (c->ctl >= 0) {
			close(c->ctl);
			c->ctl = -1;
		}
		if (p->stopping) {
			log_debug("the %s %s", c->role, how(status, buf, sizeof(buf)));
			c->ready = 0;
			continue;
		}
		if (!p->up) {
			log_err("the %s %s before it was ready: elevated cannot start", c->role,
			    how(status, buf, sizeof(buf)));
			return -1;
		}
		/* A child that ran a while comes back at once; one that keeps dying, slower. */
		c->quick_deaths = now_ms() - c->started_ms < 10000 ? c->quick_deaths + 1 : 0;
		c->restart_at_ms = now_ms() + (c->quick_deaths ? el_backoff(c->quick_deaths, 250,
		    10000) : 0);
		log_err("the %s %s: restarting it", c->role, how(status, buf, sizeof(buf)));
		c->ready = 0;
	}
	return 0;
}

static void
stop_child(struct parent *p, struct child *c, int sig)
{
	struct pollfd pf;
	int64_t until = now_ms() + 30000;

	if (c->pid == 0)
		return;
	kill(c->pid, sig);
	while (c->pid != 0 && now_ms() < until) {
		pf.fd = -1;
		(void)poll(&pf, 0, 20);
		(void)reap(p);
	}
	if (c->pid != 0) {
		log_warn("the %s did not stop within 30 s: killing it", c->role);
		kill(c->pid, SIGKILL);
		while (c->pid != 0 && waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
		c->pid = 0;
	}
}

int
parent_main(const char *config_path, const char *level)
{
	struct parent p;
	struct config cfg;
	struct el_why w = {{0}};
	struct signalfd_siginfo si;
	struct pollfd pf[3];
	sigset_t set;
	int sfd = -1, rc = 1;

	memset(&p, 0, sizeof(p));
	p.config_path = config_path;
	p.level = level;
	p.listen_fd = -1;
	p.engine = (struct child){.role = "engine", .ctl = -1};
	p.front = (struct child){.role = "front", .ctl = -1};
	if (proc_setup(config_path, level, &cfg, &set, true) != EL_OK)
		return 1;
	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
		log_err("signalfd: %s", strerror(errno));
		goto out;
	}
	if (http_listen_socket(cfg.listen, &p.listen_fd, &w) != EL_OK) {
		log_err("%s", w.msg);
		goto out;
	}
	if (spawn(&p, &p.engine) != EL_OK) {
		log_err("cannot start the engine: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		int n = 0, timeout = -1, ie = -1, ifr = -1;
		int64_t t = now_ms();

		/* The front starts once the engine is first ready; after that each child comes
		 * back on its own. */
		if (!p.stopping) {
			struct child *cs[2] = {&p.engine, &p.front};
			int i;
			for (i = 0; i < 2; i++) {
				struct child *c = cs[i];
				if (c->pid != 0 || (c == &p.front && !p.up && !p.engine.ready))
					continue;
				if (c->restart_at_ms > t) {
					int64_t left = c->restart_at_ms - t;
					if (timeout < 0 || left < timeout)
						timeout = (int)left;
					continue;
				}
				if (spawn(&p, c) != EL_OK)
					log_err("cannot start the %s: %s", c->role, strerror(errno));
			}
		}
		pf[n].fd = sfd;
		pf[n++].events = POLLIN;
		if (p.engine.ctl >= 0) {
			ie = n;
			pf[n].fd = p.engine.ctl;
			pf[n++].events = POLLIN;
		}
		if (p.front.ctl >= 0) {
			ifr = n;
			pf[n].fd = p.front.ctl;
			pf[n++].events = POLLIN;
		}
		if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR) {
			log_err("poll: %s", strerror(errno));
			break;
		}
		if (ie >= 0 && pf[ie].revents)
			on_ctl(&p, &p.engine);
		if (ifr >= 0 && pf[ifr].revents)
			on_ctl(&p, &p.front);
		if (!p.up && p.front.ready) {
			p.up = 1;
			log_info("elevated %s listening on %s (public URL %s)", VERSION, cfg.listen,
			    cfg.public_url);
		}
		if (!(pf[0].revents & POLLIN))
			continue;
		if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		if (si.ssi_signo == SIGCHLD) {
			if (reap(&p) != 0)
				break;
		} else if (si.ssi_signo == SIGHUP) {
			if (p.engine.ctl >= 0 && p.engine.ready)
				(void)frame_send(p.engine.ctl, CTL_RELOAD, 0, NULL, 0, -1);
			else
				log_warn("SIGHUP: the engine is restarting; reload again once it is back");
		} else {
			log_info("signal %d: draining", (int)si.ssi_signo);
			p.stopping = 1;
			rc = 0;
			break;
		}
	}
out:
	p.stopping = 1;
	stop_child(&p, &p.front, SIGTERM);   /* drains its requests: the engine answers them */
	stop_child(&p, &p.engine, SIGTERM);
	if (p.listen_fd >= 0)
		close(p.listen_fd);
	if (sfd >= 0)
		close(sfd);
	config_free(&cfg);
	if (rc == 0)
		log_info("stopped");
	return rc;
}
