/*
 * sandbox.c — owns the front's confinement (sandbox.h), in the order that keeps each step
 * possible: resource limits, the user's identity looked up while /etc is still there,
 * chroot, the switch of user, no_new_privs, then the seccomp filter, whose default is to
 * kill the process: a front that makes a call outside the list dies with SIGSYS, and the
 * parent says so and starts another.
 *
 * Sanitizer builds (ASan, TSan) skip the chroot and the filter: their runtimes write
 * reports to files and make calls no list here should admit. The log says so.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include "elevate/log.h"
#include "sandbox.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/*
 * What a front does once it serves: libmicrohttpd's epoll threads (accept, read, write,
 * epoll, eventfd), our workers (futex), the link and control sockets (sendmsg, recvmsg),
 * memory, time, logging to stderr, and exiting. Gathered with strace -f over the whole
 * test suite; every entry is named, none by number.
 */
static const char *const allowed[] = {
	/* memory */
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
	/* threads and their synchronisation */
	"clone", "clone3", "futex", "set_robust_list", "rseq", "sched_yield",
	"sched_getaffinity", "gettid", "getpid", "tgkill", "exit", "exit_group",
	"restart_syscall", "rt_sigprocmask", "rt_sigaction", "rt_sigreturn", "rt_sigtimedwait",
	"sigaltstack", "kill",
	/* time */
	"clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
	/* sockets already open, and connections accepted on the listener */
	"accept", "accept4", "read", "readv", "write", "writev", "recvfrom", "sendto",
	"recvmsg", "sendmsg", "close", "shutdown", "setsockopt", "getsockopt", "getsockname",
	"getpeername", "fcntl", "ioctl", "pipe2", "eventfd2", "dup",
	/* libmicrohttpd's event loop */
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "poll", "ppoll", "select",
	"pselect6",
	/* stdio on stderr, randomness for TLS */
	"fstat", "newfstatat", "lseek", "getrandom",
	/* the file limit libmicrohttpd asks about */
	"getrlimit", "prlimit64",
};

static enum el_err
seccomp_on(struct el_why *w)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	size_t i;
	int nr, rc;

	if (ctx == NULL)
		return el_fail(w, EL_EIO, "seccomp_init failed");
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		if ((nr = seccomp_syscall_resolve_name(allowed[i])) == __NR_SCMP_ERROR)
			continue;   /* not on this architecture */
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)) != 0) {
			seccomp_release(ctx);
			return el_fail(w, EL_EIO, "seccomp: cannot allow %s: %s", allowed[i],
			    strerror(-rc));
		}
	}
	/* glibc's malloc opens /sys/devices/system/cpu/online to size a new thread's arena,
	 * and does without when it cannot: a file opened is refused, not fatal (there is
	 * nothing to open in the empty root anyway) */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0)) != 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(open), 0)) != 0) {
		seccomp_release(ctx);
		return el_fail(w, EL_EIO, "seccomp: cannot refuse open: %s", strerror(-rc));
	}
	/* libmicrohttpd names its threads; no other prctl */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
	    SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME))) != 0) {
		seccomp_release(ctx);
		return el_fail(w, EL_EIO, "seccomp: cannot allow prctl: %s", strerror(-rc));
	}
	rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc != 0)
		return el_fail(w, EL_EIO, "seccomp: cannot load the filter: %s", strerror(-rc));
	return EL_OK;
}

/* chroot to an empty directory nobody else can reach: a new one, removed once we are in
 * it. */
static enum el_err
chroot_empty(struct el_why *w)
{
	char dir[] = "/tmp/elevated-front.XXXXXX";
	int fd;

	if (mkdtemp(dir) == NULL)
		return el_fail(w, EL_EIO, "mkdtemp: %s", strerror(errno));
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rmdir(dir);
		return el_fail(w, EL_EIO, "%s: %s", dir, strerror(errno));
	}
	rmdir(dir);
	if (fchdir(fd) != 0 || chroot(".") != 0 || chdir("/") != 0) {
		close(fd);
		return el_fail(w, EL_EIO, "chroot: %s", strerror(errno));
	}
	close(fd);
	return EL_OK;
}

enum el_err
sandbox_enter(const char *run_as, struct el_why *w)
{
	struct rlimit none = {0, 0};
	struct passwd *pw = NULL;
	enum el_err r;

	if (setrlimit(RLIMIT_CORE, &none) != 0 || prctl(PR_SET_DUMPABLE, 0) != 0)
		return el_fail(w, EL_EIO, "cannot turn core dumps off: %s", strerror(errno));
	if (geteuid() == 0) {
		if (run_as != NULL && (pw = getpwnam(run_as)) == NULL)
			return el_fail(w, EL_ECONFIG, "run_as: no such user: %s", run_as);
		if (pw != NULL && pw->pw_uid == 0)
			return el_fail(w, EL_ECONFIG, "run_as: %s is root: name an unprivileged user",
			    run_as);
		if (!SANITIZED && (r = chroot_empty(w)) != EL_OK)
			return r;
		if (pw != NULL) {
			if (setgroups(1, &pw->pw_gid) != 0 ||
			    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
			    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0)
				return el_fail(w, EL_EIO, "cannot become %s: %s", run_as,
				    strerror(errno));
			if (setresuid(0, 0, 0) == 0)
				return el_fail(w, EL_EIO, "could become root again after switching to %s",
				    run_as);
		} else
			log_warn("the front runs as root (chrooted): set run_as to an unprivileged "
			    "user");
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return el_fail(w, EL_EIO, "no_new_privs: %s", strerror(errno));
	if (SANITIZED) {
		log_info("sanitizer build: the front runs without its chroot and seccomp filter");
		return EL_OK;
	}
	return seccomp_on(w);
}
