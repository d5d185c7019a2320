/*
 * proc.c — what each of elevated's processes does first (proc.h): load the
 * configuration, start logging, and block the signals it will wait for.
 */
#include <signal.h>
#include <string.h>

#include "proc.h"

enum log_level
proc_log_level(const char *s)
{
	if (strcmp(s, "error") == 0)
		return LOG_LVL_ERR;
	if (strcmp(s, "warn") == 0)
		return LOG_LVL_WARN;
	if (strcmp(s, "debug") == 0)
		return LOG_LVL_DEBUG;
	return LOG_LVL_INFO;
}

enum el_err
proc_setup(const char *config_path, const char *level, struct config *cfg, sigset_t *set,
    bool chld)
{
	struct diags d;

	diags_init(&d);
	if (config_load(config_path, cfg, &d) != EL_OK) {
		diags_print(&d, stderr);
		diags_free(&d);
		config_free(cfg);
		return EL_ECONFIG;
	}
	diags_free(&d);
	log_init("elevated", cfg->log_syslog, proc_log_level(level ? level : cfg->log_level));
	/* Blocked in every thread; one waits for them (sigwait, or the parent's signalfd). */
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	if (chld)
		sigaddset(set, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
	return EL_OK;
}
