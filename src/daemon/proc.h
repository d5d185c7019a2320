/*
 * proc.h — elevated's three processes (docs/security.md): the parent supervises, the
 * front serves HTTP and holds no secret, the engine holds every secret and decides. The
 * parent starts each child as `elevated --front|--engine --ctl-fd N ...` (a fresh
 * executable image: nothing of the parent's memory is inherited).
 */
#ifndef ELEVATED_PROC_H
#define ELEVATED_PROC_H

#include <signal.h>
#include <stdbool.h>

#include "elevate/config.h"
#include "elevate/log.h"

#define VERSION "0.1.0"

/* The parent: returns the exit status. */
int parent_main(const char *config_path, const char *level);
/* The engine process: store, keys, policies, audit, AWS, reaper, mailer; answers the
 * front's calls on the link the parent hands it over ctl_fd. */
int engine_main(const char *config_path, const char *level, int ctl_fd);
/* The front process: libmicrohttpd on listen_fd, sandboxed; forwards every request to the
 * engine over the link. */
int front_main(const char *config_path, const char *level, int ctl_fd, int listen_fd);

enum log_level proc_log_level(const char *s);
/* Loads the configuration at config_path (its problems printed), starts logging at level
 * (NULL: the configuration's), blocks SIGHUP, SIGTERM, SIGINT (and SIGCHLD when chld) into
 * *set and ignores SIGPIPE. EL_ECONFIG when the configuration does not load. */
enum el_err proc_setup(const char *config_path, const char *level, struct config *cfg,
    sigset_t *set, bool chld);

#endif
