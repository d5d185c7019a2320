/*
 * pg_smoke.c — proves that the build links libpq and reaches a PostgreSQL server:
 * connects to the connection string in ELEVATE_PG_URL (a postgresql:// URL or libpq
 * key=value words; the password comes from its passfile, never from the string), runs
 * SELECT 1 and says what it reached. Exit 0 when SELECT 1 answered 1; 1 with libpq's
 * message when not; 2 without ELEVATE_PG_URL or with a password in it.
 * tests/integration/test_pg.py runs it against the server of tests/integration/pg.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define CONNECT_TIMEOUT "10"   /* seconds; a URL's own connect_timeout wins */

/* 1 if the connection string sets a password (it belongs in a passfile), -1 if bad. */
static int
has_password(const char *conninfo)
{
	PQconninfoOption *opts, *o;
	char *err = NULL;
	int found = 0;

	if ((opts = PQconninfoParse(conninfo, &err)) == NULL) {
		fprintf(stderr, "pg_smoke: ELEVATE_PG_URL is not a libpq connection string: %s",
		    err != NULL ? err : "out of memory\n");
		PQfreemem(err);
		return -1;
	}
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0')
			found = 1;
	PQconninfoFree(opts);
	return found;
}

int
main(void)
{
	static const char *const keys[] = {"connect_timeout", "dbname", NULL};
	const char *vals[] = {CONNECT_TIMEOUT, NULL, NULL};
	const char *url = getenv("ELEVATE_PG_URL");
	PGconn *c;
	PGresult *res = NULL;
	int rc = 1, p;

	if (url == NULL || url[0] == '\0') {
		fprintf(stderr, "pg_smoke: set ELEVATE_PG_URL to a libpq connection string, e.g. "
		    "postgresql://elevate@127.0.0.1:5432/elevate?passfile=/path/pgpass\n");
		return 2;
	}
	if ((p = has_password(url)) != 0) {
		if (p > 0)
			fprintf(stderr, "pg_smoke: ELEVATE_PG_URL holds a password: put it in a "
			    "passfile (passfile=PATH, mode 0600) instead\n");
		return 2;
	}
	vals[1] = url;   /* expand_dbname: the URL's parameters follow connect_timeout's */
	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "pg_smoke: cannot connect: %s", c != NULL ? PQerrorMessage(c) :
		    "out of memory\n");
		goto out;
	}
	res = PQexec(c, "SELECT 1");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQnfields(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "1") != 0) {
		fprintf(stderr, "pg_smoke: SELECT 1 did not answer 1: %s", PQerrorMessage(c));
		goto out;
	}
	printf("pg_smoke: SELECT 1 = 1 on PostgreSQL %d at %s port %s, database %s, as %s "
	    "(TLS %s)\n", PQserverVersion(c), PQhost(c), PQport(c), PQdb(c), PQuser(c),
	    PQsslInUse(c) ? "on" : "off");
	rc = 0;
out:
	PQclear(res);
	PQfinish(c);
	return rc;
}
