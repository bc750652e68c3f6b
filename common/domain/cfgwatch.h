/* cfgwatch.h - a daemon's live view of the configuration: polls the store's config version and
 * reloads on change, so running stages see an import within 1 s without a restart. */
#ifndef HL_CFGWATCH_H
#define HL_CFGWATCH_H

#include "domain/config.h"
#include "domain/store.h"
#include <uv.h>

typedef struct cfgwatch cfgwatch_t;

/* cfgwatch_init opens the store at db_path, loads the configuration and starts polling every
 * interval_ms. Returns 0 or a negative errno with err. */
int cfgwatch_init(cfgwatch_t **cwp, uv_loop_t *loop, const char *db_path, unsigned interval_ms,
                  char *err, size_t errlen);
/* cfgwatch_config: the current configuration, never NULL (empty when nothing was imported).
 * Valid until control returns to the loop: do not keep pointers into it across callbacks. */
const config_t *cfgwatch_config(cfgwatch_t *cw);
/* cfgwatch_store: the store handle, for the stage's own writes (delivery log). */
store_t *cfgwatch_store(cfgwatch_t *cw);
/* cfgwatch_version: the loaded configuration's version. */
int64_t cfgwatch_version(cfgwatch_t *cw);
/* Causal configuration (CONTRACT.md: a change is in force when the command returns).
 * cfgwatch_refresh reads the store's version now and reloads when it moved: ingest calls it
 * before it accepts what a producer sent, so an event accepted after an import returned is
 * normalized with that import or a newer one. cfgwatch_catch_up(cw, v) reloads when the loaded
 * version is older than v (the version an upstream stage worked with, carried in its frame): 0
 * once the loaded version is v or newer, -EAGAIN when the store could not be read (the old
 * configuration stays; the caller decides). */
void cfgwatch_refresh(cfgwatch_t *cw);
int cfgwatch_catch_up(cfgwatch_t *cw, int64_t version);
/* cfgwatch_close stops polling, frees the configuration and closes the store once the timer
 * handle is closed. */
void cfgwatch_close(cfgwatch_t *cw);

#endif
