/* config_patch.c - one webhook changed by a partial object (hookctl webhook update --json, the
 * API's PATCH): every top-level key given replaces the stored one, every other key is kept. */
#include "domain/config.h"

#include <stdio.h>
#include <string.h>

/* patch_same: key of patch is absent, or the string want (a webhook keeps its id and project). */
static int patch_same(const json_t *patch, const char *key, const char *want, const char *what,
                      char *err, size_t errlen)
{
    const json_t *v = json_object_get(patch, key);
    if (!v || (json_is_string(v) && want && strcmp(json_string_value(v), want) == 0)) return 0;
    snprintf(err, errlen, "%s: must be \"%s\" (a webhook keeps its %s)", key, want ? want : "",
             what);
    return -1;
}

json_t *config_webhook_merge(const webhook_t *old, const json_t *patch, char *err, size_t errlen)
{
    if (!json_is_object(patch)) {
        snprintf(err, errlen, "must be a JSON object");
        return NULL;
    }
    if (patch_same(patch, "id", old->id, "id", err, errlen) < 0 ||
        patch_same(patch, "project_id", old->project_id, "project", err, errlen) < 0)
        return NULL;
    json_t *obj = config_webhook_to_json(old, 1); /* the stored one, credentials in clear */
    if (!obj || json_object_update(obj, (json_t *)patch) < 0) {
        json_decref(obj);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    json_object_del(obj, "project_id");
    return obj;
}
