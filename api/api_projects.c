/* api_projects.c - /v1/projects: list the projects a token may see, and one project's settings
 * (name, fields, funnels) read, created or replaced, or removed with its webhooks. Writes go
 * through the store in one transaction that bumps the configuration version, so a change is in
 * force when the request returns (DESIGN.md "Configuration in force"). */
#include "api_config.h"

#include <errno.h>
#include <string.h>

const project_t *api_config_project(api_req_t *r)
{
    const char *id = api_param(r, 0);
    const project_t *p = config_find_project(api_config(api_of(r)), id);
    if (!p) api_reply_error(r, 404, "no project \"%s\"", id ? id : "");
    return p;
}

void api_config_store_fail(api_req_t *r, int rc, const char *err)
{
    const char *why = err && err[0] ? err : strerror(-rc);
    if (rc == -EINVAL)
        api_reply_error(r, 400, "%s", why);
    else if (rc == -EBUSY)
        api_reply_error(r, 503, "the store is busy (another writer holds it): try again");
    else
        api_reply_error(r, 500, "%s", why);
}

/* project_json: the API's project (the import object without webhooks), or NULL after 500. */
static json_t *project_json(api_req_t *r, const project_t *p)
{
    json_t *o = config_project_to_json(p);
    if (!o) api_reply_error(r, 500, "out of memory");
    return o;
}

void api_projects_list(api_req_t *r)
{
    const api_principal_t *who = api_who(r);
    const config_t *cfg = api_config(api_of(r));
    json_t *data = json_array();
    for (size_t i = 0; data && i < cfg->nprojects; i++) {
        const project_t *p = &cfg->projects[i];
        if (who->project[0] && strcmp(who->project, p->id) != 0) continue;
        json_t *o = config_project_to_json(p);
        if (!o || json_array_append_new(data, o) < 0) {
            json_decref(data);
            data = NULL;
        }
    }
    if (!data) {
        api_reply_error(r, 500, "out of memory");
        return;
    }
    api_reply_json(r, 200, json_pack("{s:o}", "data", data));
}

void api_project_get(api_req_t *r)
{
    const project_t *p = api_config_project(r);
    json_t *o = p ? project_json(r, p) : NULL;
    if (o) api_reply_json(r, 200, o);
}

void api_project_put(api_req_t *r)
{
    const char *id = api_param(r, 0);
    char err[512] = "";
    project_t p;
    json_t *body = api_body_json(r);
    if (!body) return;
    if (json_object_get(body, "webhooks")) {
        api_reply_error(r, 400,
                        "webhooks: not part of a project's settings (a PUT keeps the project's "
                        "webhooks; change them under /v1/projects/%s/webhooks)",
                        id);
        goto out;
    }
    const json_t *jid = json_object_get(body, "id");
    if (!jid) {
        json_object_set_new(body, "id", json_string(id));
    } else if (!json_is_string(jid) || strcmp(json_string_value(jid), id) != 0) {
        api_reply_error(r, 400, "id: must be \"%s\" (the project of the path)", id);
        goto out;
    }
    int rc = config_project_from_json(body, &p, err, sizeof err);
    if (rc < 0) {
        api_reply_error(r, 400, "%s", err[0] ? err : strerror(-rc));
        goto out;
    }
    rc = store_project_put(api_store(api_of(r)), &p, NULL, err, sizeof err);
    if (rc < 0) {
        api_config_store_fail(r, rc, err);
    } else {
        json_t *o = project_json(r, &p);
        if (o) api_reply_json(r, 200, o);
    }
    config_project_clear(&p);
out:
    json_decref(body);
}

void api_project_delete(api_req_t *r)
{
    const char *id = api_param(r, 0);
    char err[512] = "";
    int rc = store_project_delete(api_store(api_of(r)), id, err, sizeof err);
    if (rc == -ENOENT)
        api_reply_error(r, 404, "no project \"%s\"", id);
    else if (rc < 0)
        api_config_store_fail(r, rc, err);
    else
        api_reply_json(r, 204, NULL);
}
