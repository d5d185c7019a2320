/*
 * audit_syslog.c — owns the audit trail's syslog wire: RFC 3164 messages
 * ("<PRI>Mmm dd hh:mm:ss HOST elevated[PID]: MSG") written as datagrams to a Unix socket
 * (/dev/log, or a test's listener), at the audit facility whatever log.* say.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "elevate/audit_export.h"

static const struct {
	const char *name;
	int code;
} facilities[] = {
	{"auth", LOG_AUTH}, {"authpriv", LOG_AUTHPRIV}, {"daemon", LOG_DAEMON},
	{"user", LOG_USER}, {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},
	{"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},
	{"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

int
audit_syslog_facility(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcmp(name, facilities[i].name) == 0)
			return facilities[i].code;
	return -1;
}

enum el_err
audit_syslog_format(struct dbuf *b, int facility, int64_t t, const char *host, long pid,
    const char *msg)
{
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
	    "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t tt = (time_t)t;
	struct tm tm;

	localtime_r(&tt, &tm);
	dbuf_reset(b);
	/* RFC 3164 pads a one-digit day with a space: "Nov  2". */
	return dbuf_printf(b, "<%d>%s %2d %02d:%02d:%02d %s elevated[%ld]: %s",
	    facility | LOG_INFO, mon[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    host, pid, msg);
}

int
audit_syslog_connect(const char *path, struct el_why *w)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (el_strlcpy(sa.sun_path, path, sizeof(sa.sun_path)) >= sizeof(sa.sun_path)) {
		el_fail(w, EL_EINVAL, "audit.syslog_socket %s: path too long", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		el_fail(w, EL_EIO, "syslog socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		el_fail(w, EL_EIO, "cannot reach syslog at %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

enum el_err
audit_syslog_send(int fd, const struct dbuf *b, struct el_why *w)
{
	ssize_t n;

	do
		n = send(fd, b->p, b->len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 || (size_t)n != b->len)
		return el_fail(w, EL_EIO, "syslog: %s", n < 0 ? strerror(errno) : "short send");
	return EL_OK;
}
