/* cfgwatch.c - reload the configuration when the store's version counter moves. */
#include "domain/cfgwatch.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>

struct cfgwatch {
    uv_timer_t timer;
    store_t *store;
    config_t *cfg;
    int64_t version;
};

/* cfgwatch_reload loads the configuration if its version changed; keeps the old one on error. */
static void cfgwatch_reload(cfgwatch_t *cw)
{
    int64_t v;
    char err[256];
    if (store_config_version(cw->store, &v) < 0) {
        log_warn("configuration: cannot read version; keeping version %lld",
                 (long long)cw->version);
        return;
    }
    if (v == cw->version && cw->cfg) return;
    config_t *cfg;
    if (store_load_config(cw->store, &cfg, err, sizeof err) < 0) {
        log_warn("configuration: reload failed: %s; keeping version %lld", err,
                 (long long)cw->version);
        return;
    }
    config_free(cw->cfg);
    cw->cfg = cfg;
    if (cw->version != 0 || v != 0) log_info("configuration version %lld loaded", (long long)v);
    cw->version = v;
}

/* cfgwatch_tick is the poll timer. */
static void cfgwatch_tick(uv_timer_t *t)
{
    cfgwatch_reload(t->data);
}

int cfgwatch_init(cfgwatch_t **cwp, uv_loop_t *loop, const char *db_path, unsigned interval_ms,
                  char *err, size_t errlen)
{
    cfgwatch_t *cw = calloc(1, sizeof *cw);
    if (!cw) return -ENOMEM;
    int rc = store_open(&cw->store, db_path, err, errlen);
    if (rc < 0) {
        free(cw);
        return rc;
    }
    store_set_busy(cw->store, 100, 2); /* on the event loop: fail fast, retry from a timer */
    cw->version = -1;
    cfgwatch_reload(cw);
    if (!cw->cfg) {
        cw->cfg = calloc(1, sizeof *cw->cfg);
        if (!cw->cfg) {
            store_close(cw->store);
            free(cw);
            return -ENOMEM;
        }
    }
    uv_timer_init(loop, &cw->timer);
    cw->timer.data = cw;
    uv_timer_start(&cw->timer, cfgwatch_tick, interval_ms, interval_ms);
    uv_unref((uv_handle_t *)&cw->timer);
    *cwp = cw;
    return 0;
}

const config_t *cfgwatch_config(cfgwatch_t *cw)
{
    return cw->cfg;
}

store_t *cfgwatch_store(cfgwatch_t *cw)
{
    return cw->store;
}

int64_t cfgwatch_version(cfgwatch_t *cw)
{
    return cw->version;
}

void cfgwatch_refresh(cfgwatch_t *cw)
{
    cfgwatch_reload(cw);
}

int cfgwatch_catch_up(cfgwatch_t *cw, int64_t version)
{
    if (version <= cw->version) return 0;
    cfgwatch_reload(cw);
    return cw->version >= version ? 0 : -EAGAIN;
}

/* cfgwatch_closed frees everything once the timer is closed. */
static void cfgwatch_closed(uv_handle_t *h)
{
    cfgwatch_t *cw = h->data;
    config_free(cw->cfg);
    store_close(cw->store);
    free(cw);
}

void cfgwatch_close(cfgwatch_t *cw)
{
    if (!cw) return;
    uv_timer_stop(&cw->timer);
    uv_close((uv_handle_t *)&cw->timer, cfgwatch_closed);
}
