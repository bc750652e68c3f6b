/* mpjson.h - msgpack objects to jansson values (producer frames in msgpack). */
#ifndef HL_MPJSON_H
#define HL_MPJSON_H
#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>
/* mpjson_to_json converts; map keys must be strings, depth at most max_depth, floats must be
 * finite, binary/ext types are refused. Returns 0 with *out (caller decrefs) or -EINVAL with a
 * reason naming the path. Duplicate map keys are refused. */
int mpjson_to_json(const msgpack_object *o, int max_depth, json_t **out, char *err, size_t errlen);
/* mpjson_pack_json packs a jansson value as msgpack. */
void mpjson_pack_json(msgpack_packer *pk, const json_t *v);
#endif
