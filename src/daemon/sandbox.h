/*
 * sandbox.h — what the front gives up before it reads a byte from the network: core
 * dumps, ptrace by its own user, ever gaining a privilege, the filesystem (started as
 * root: chroot to an empty directory, then the run_as user), and every system call
 * outside an allowlist (seccomp). docs/security.md lists what remains.
 */
#ifndef ELEVATED_SANDBOX_H
#define ELEVATED_SANDBOX_H

#include "elevate/el.h"

/* run_as: the user to become when started as root (NULL: stay root, chrooted, with a
 * warning). Call before any thread starts. */
enum el_err sandbox_enter(const char *run_as, struct el_why *w);

#endif
