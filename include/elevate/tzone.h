/*
 * tzone.h — local time in a named IANA time zone (Asia/Tokyo), read from the system's
 * compiled zone files (/usr/share/zoneinfo, TZif), without touching the process-wide TZ:
 * the engine's threads convert times for different zones at once.
 */
#ifndef ELEVATE_TZONE_H
#define ELEVATE_TZONE_H

#include <stdint.h>
#include <time.h>

#include "elevate/el.h"

#define TZONE_DIR "/usr/share/zoneinfo"
#define TZONE_NAME_MAX 64

struct tzone;

/* Loads zone name ("UTC", "Asia/Tokyo"; letters, digits, '_', '+', '-', '/', no "..")
 * from dir (NULL: TZONE_DIR). *out: free with tzone_free. */
enum el_err tzone_load(const char *dir, const char *name, struct tzone **out,
    struct el_why *w);
void tzone_free(struct tzone *z);
/* t (epoch seconds) as the zone's local broken-down time; the UTC offset in *utoff. */
void tzone_local(const struct tzone *z, int64_t t, struct tm *out, int32_t *utoff);

#endif
