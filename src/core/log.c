/*
 * log.c — owns process logging: levelled lines to stderr (with UTC time) or syslog,
 * and fatal()/fatalx().
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "elevate/el.h"
#include "elevate/log.h"

static int log_syslog;
static enum log_level log_level = LOG_LVL_INFO;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *const lvl_names[] = {"error", "warn", "info", "debug"};

void
log_init(const char *ident, int use_syslog, enum log_level level)
{
	log_syslog = use_syslog;
	log_level = level;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

static void
log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[2048], ts[32];

	if (lvl > log_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_syslog) {
		syslog(prio[lvl], "%s", line);
		return;
	}
	el_format_time(el_now(), ts, sizeof(ts));
	pthread_mutex_lock(&log_mu);
	fprintf(stderr, "%s %s %s\n", ts, lvl_names[lvl], line);
	fflush(stderr);
	pthread_mutex_unlock(&log_mu);
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_err("fatal: %s: %s", buf, strerror(saved));
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_err("fatal: %s", buf);
	exit(1);
}
