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
/* cfgwatch_close stops polling, frees the configuration and closes the store once the timer
 * handle is closed. */
void cfgwatch_close(cfgwatch_t *cw);

#endif
