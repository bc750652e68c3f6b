/* api_pending.c - TEMPORARY, on branch h-core only: the handlers other helpers write
 * (api_projects.c, api_webhooks.c, api_events.c, api_deliveries.c, api_metrics.c,
 * api_console.c) answer 501 until their branches merge, so hook-api links and its core can be
 * tested. Delete this file when those branches merge. */
#include "api.h"

#define API_PENDING(fn)                                                                            \
    void fn(api_req_t *r)                                                                          \
    {                                                                                              \
        api_reply_error(r, 501, "not implemented yet");                                            \
    }

API_PENDING(api_metrics)
API_PENDING(api_readyz)
