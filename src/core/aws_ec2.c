/*
 * aws_ec2.c — owns the EC2 calls: DescribeInstances by tag filters (to resolve a
 * profile's SSM target tags into instance ids, all pages) and the read-only revocation
 * probes (DescribeRegions, one small page of DescribeInstances) that tell whether a
 * grant's credentials still work. Query protocol with EC2's own XML shapes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libxml/tree.h>

#include "elevate/aws.h"
#include "elevate/aws_internal.h"
#include "elevate/el.h"

#define EC2_VERSION   "2016-11-15"
#define EC2_PAGE_SIZE "1000"
#define EC2_MAX_TAGS  50

static int
is_element(xmlNodePtr n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

enum el_err
aws_parse_describe_instances(const char *xml, size_t len, struct aws_ids *ids,
    char **next_token, struct el_why *w)
{
	xmlDocPtr doc = NULL;
	xmlNodePtr root, rset, res, iset, inst, nt;
	char id[64];
	char *t;
	enum el_err r;

	*next_token = NULL;
	if ((r = aws_xml_read(xml, len, &doc, w)) != EL_OK)
		return r;
	root = xmlDocGetRootElement(doc);
	if (strcmp((const char *)root->name, "DescribeInstancesResponse") != 0) {
		r = el_fail(w, EL_EPARSE, "expected <DescribeInstancesResponse>, got <%s>",
		    (const char *)root->name);
		goto out;
	}
	if ((rset = aws_xml_child(root, "reservationSet")) == NULL) {
		r = el_fail(w, EL_EPARSE, "response has no reservationSet");
		goto out;
	}
	for (res = rset->children; res != NULL; res = res->next) {
		if (!is_element(res, "item"))
			continue;
		if ((iset = aws_xml_child(res, "instancesSet")) == NULL)
			continue;
		for (inst = iset->children; inst != NULL; inst = inst->next) {
			if (!is_element(inst, "item"))
				continue;
			if ((r = aws_xml_copy(aws_xml_child(inst, "instanceId"),
			    "instancesSet/item/instanceId", id, sizeof(id), w)) != EL_OK)
				goto out;
			if ((r = aws_ids_add(ids, id)) != EL_OK) {
				r = el_fail(w, r, r == EL_ETOOBIG ? "more than %d instances" :
				    "out of memory (%d)", AWS_MAX_IDS);
				goto out;
			}
		}
	}
	if ((nt = aws_xml_child(root, "nextToken")) != NULL) {
		if ((t = aws_xml_text(nt)) == NULL) {
			r = el_fail(w, EL_ENOMEM, "out of memory");
			goto out;
		}
		if (*t == '\0')
			free(t);
		else
			*next_token = t;
	}
	r = EL_OK;
out:
	aws_xml_free(doc);
	return r;
}

/* Sends `action` with the given extra form (already encoded, may be empty). */
static enum el_err
call_action(struct aws_client *c, const struct aws_creds *as, const char *region,
    const char *action, const struct dbuf *extra, struct aws_resp *resp,
    struct aws_error *err)
{
	struct aws_call call;
	struct dbuf body;
	enum el_err r;

	dbuf_init(&body, AWS_MAX_REQUEST);
	r = aws_form_add(&body, "Action", action);
	if (r == EL_OK)
		r = aws_form_add(&body, "Version", EC2_VERSION);
	if (r == EL_OK && extra->len > 0) {
		if ((r = dbuf_add(&body, "&", 1)) == EL_OK)
			r = dbuf_add(&body, extra->p, extra->len);
	}
	if (r != EL_OK) {
		aws_error_set(err, 0, NULL, "%s: request too large", action);
		goto out;
	}
	memset(&call, 0, sizeof(call));
	call.svc = AWS_SVC_EC2;
	call.action = action;
	call.region = region;
	call.as = as;
	call.proto = AWS_PROTO_QUERY;
	call.body = body.p;
	call.body_len = body.len;
	r = aws_call_do(c, &call, resp, err);
out:
	dbuf_free(&body);
	return r;
}

enum el_err
aws_ec2_instances_with_tags(struct aws_client *c, const struct aws_creds *as,
    const char *region, json_t *tags, char ***ids, size_t *n, struct aws_error *err)
{
	struct aws_ids l;
	struct aws_resp resp;
	struct dbuf filters, extra;
	struct el_why w = {{0}};
	const char *k;
	json_t *v;
	char key[64], name[160];
	char *next = NULL;
	size_t i = 0;
	int page;
	enum el_err r = EL_OK;

	*ids = NULL;
	*n = 0;
	memset(&l, 0, sizeof(l));
	aws_resp_init(&resp);
	dbuf_init(&filters, AWS_MAX_REQUEST);
	dbuf_init(&extra, AWS_MAX_REQUEST);
	/* No tags would mean every instance of the account: never what a policy meant. */
	if (!json_is_object(tags) || json_object_size(tags) == 0 ||
	    json_object_size(tags) > EC2_MAX_TAGS) {
		aws_error_set(err, 0, NULL, "DescribeInstances: tags must be an object of 1-%d "
		    "key/value strings", EC2_MAX_TAGS);
		r = EL_EINVAL;
		goto out;
	}
	json_object_foreach(tags, k, v) {
		if (!json_is_string(v) || *k == '\0' || strlen(k) > 128) {
			aws_error_set(err, 0, NULL, "DescribeInstances: tag '%s' must have a "
			    "string value and a 1-128 character key", k);
			r = EL_EINVAL;
			goto out;
		}
		i++;
		snprintf(key, sizeof(key), "Filter.%zu.Name", i);
		snprintf(name, sizeof(name), "tag:%s", k);
		if ((r = aws_form_add(&filters, key, name)) != EL_OK)
			break;
		snprintf(key, sizeof(key), "Filter.%zu.Value.1", i);
		if ((r = aws_form_add(&filters, key, json_string_value(v))) != EL_OK)
			break;
	}
	if (r == EL_OK)
		r = aws_form_add(&filters, "MaxResults", EC2_PAGE_SIZE);
	if (r != EL_OK) {
		aws_error_set(err, 0, NULL, "DescribeInstances: request too large");
		goto out;
	}
	for (page = 0; page < AWS_MAX_PAGES; page++) {
		dbuf_reset(&extra);
		if ((r = dbuf_add(&extra, filters.p, filters.len)) != EL_OK ||
		    (next != NULL && (r = aws_form_add(&extra, "NextToken", next)) != EL_OK)) {
			aws_error_set(err, 0, NULL, "DescribeInstances: request too large");
			goto out;
		}
		if ((r = call_action(c, as, region, "DescribeInstances", &extra, &resp, err))
		    != EL_OK)
			goto out;
		free(next);
		next = NULL;
		if ((r = aws_parse_describe_instances(resp.body.p, resp.body.len, &l, &next,
		    &w)) != EL_OK) {
			aws_error_set(err, resp.status, resp.request_id, "DescribeInstances: %s",
			    w.msg);
			goto out;
		}
		aws_resp_free(&resp);
		if (next == NULL)
			break;
	}
	if (next != NULL) {
		aws_error_set(err, 0, NULL, "DescribeInstances: more than %d pages",
		    AWS_MAX_PAGES);
		r = EL_ETOOBIG;
		goto out;
	}
	*ids = l.v;
	*n = l.n;
	memset(&l, 0, sizeof(l));
out:
	free(next);
	dbuf_free(&filters);
	dbuf_free(&extra);
	aws_resp_free(&resp);
	aws_ids_free(&l);
	return r;
}


enum el_err
aws_ec2_probe(struct aws_client *c, const struct aws_creds *as, const char *region,
    const char *action, struct aws_error *err)
{
	struct aws_resp resp;
	struct dbuf extra;
	enum el_err r;

	aws_resp_init(&resp);
	dbuf_init(&extra, 256);
	if (strcmp(action, "DescribeInstances") == 0)
		r = aws_form_add(&extra, "MaxResults", "5");
	else if (strcmp(action, "DescribeRegions") == 0)
		r = EL_OK;
	else {
		aws_error_set(err, 0, NULL, "%s is not an EC2 revocation probe", action);
		r = EL_EINVAL;
		goto out;
	}
	if (r == EL_OK)
		r = call_action(c, as, region, action, &extra, &resp, err);
out:
	dbuf_free(&extra);
	aws_resp_free(&resp);
	return r;
}
