/* ctl_deliveries.c - hookctl deliveries, delivery, redeliver and prune: the delivery log in the
 * store, and redelivery through the scheduler. */
#include "ctl.h"

#include "domain/redeliver.h"
#include "util/client.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct ctl_deliveries_list_ctx {
    int as_json;
    size_t count;
} ctl_deliveries_list_ctx_t;

/* ctl_deliveries_last: the last outcome in words: "HTTP 500", the transport error, or "-". */
static const char *ctl_deliveries_last(const delivery_t *d, char *buf, size_t n)
{
    if (d->error && d->error[0])
        snprintf(buf, n, "%s", d->error);
    else if (d->resp_status)
        snprintf(buf, n, "HTTP %d", d->resp_status);
    else
        snprintf(buf, n, "-");
    return buf;
}

/* ctl_deliveries_row: one record as a table row or a JSON line. */
static int ctl_deliveries_row(void *arg, const delivery_t *d)
{
    ctl_deliveries_list_ctx_t *lc = arg;
    char last[256], upd[40];

    lc->count++;
    if (lc->as_json) {
        json_t *o = store_delivery_to_json(d);
        if (o) {
            json_dumpf(o, stdout, JSON_COMPACT);
            putchar('\n');
            json_decref(o);
        }
        return 0;
    }
    printf("%-36s %-20s %-24s %-9s %8d  %-24s %s\n", d->invocation_id, d->webhook_id,
           d->event_type ? d->event_type : "-", store_status_name(d->status),
           d->earlier_sends + d->attempts, ctl_deliveries_last(d, last, sizeof last),
           ctl_format_time(d->updated_at, upd, sizeof upd));
    return 0;
}

/* ctl_deliveries_list: hookctl deliveries [--webhook ID] [--event ID] [--status S] [--limit N]
 * [--json]. */
int ctl_deliveries_list(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"webhook", required_argument, NULL, 'w'}, {"event", required_argument, NULL, 'e'},
        {"status", required_argument, NULL, 's'},  {"limit", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},          {0, 0, 0, 0}};
    delivery_filter_t f = {.status = -1};
    ctl_deliveries_list_ctx_t lc = {0};
    char err[512] = "";
    store_t *st;
    long v;
    int c, rc;

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0) {
        switch (c) {
        case 'w':
            f.webhook_id = optarg;
            break;
        case 'e':
            f.event_id = optarg;
            break;
        case 's':
            if ((f.status = store_status_parse(optarg)) < 0)
                return ctl_usage_error(ctl,
                                       "--status: unknown status '%s' (pending, retrying, "
                                       "succeeded, failed)",
                                       optarg);
            break;
        case 'n':
            if (ctl_parse_long(optarg, 1, 1000000, &v) < 0)
                return ctl_usage_error(ctl, "--limit: expected a number from 1 to 1000000");
            f.limit = (int)v;
            break;
        case 'j':
            lc.as_json = 1;
            break;
        default:
            return CTL_EXIT_USAGE;
        }
    }
    if (optind != argc) return ctl_usage_error(ctl, "unexpected argument '%s'", argv[optind]);
    if ((rc = ctl_store_open(ctl, &st)) != 0) return rc;
    if (!lc.as_json)
        printf("%-36s %-20s %-24s %-9s %8s  %-24s %s\n", "INVOCATION", "WEBHOOK", "EVENT TYPE",
               "STATUS", "ATTEMPTS", "LAST", "UPDATED");
    rc = store_deliveries_list(st, &f, ctl_deliveries_row, &lc, err, sizeof err);
    store_close(st);
    if (rc < 0) {
        ctl_error(ctl, "%s", err[0] ? err : strerror(-rc));
        return CTL_EXIT_FAIL;
    }
    return CTL_EXIT_OK;
}

/* ctl_deliveries_text: print bytes, control characters other than newline and tab as '.'. */
static void ctl_deliveries_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        putchar(ch == '\n' || ch == '\t' || (ch >= 0x20 && ch != 0x7f) ? ch : '.');
    }
}

/* ctl_deliveries_headers: "  Name: value" lines of a JSON object text. */
static void ctl_deliveries_headers(const char *text)
{
    json_t *h = text ? json_loads(text, 0, NULL) : NULL;
    const char *k;
    json_t *v;

    json_object_foreach(h, k, v)
    {
        const char *s = json_string_value(v);
        char *dumped = s ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("  %s: ", k);
        ctl_deliveries_text(s ? s : dumped ? dumped : "", strlen(s ? s : dumped ? dumped : ""));
        putchar('\n');
        free(dumped);
    }
    json_decref(h);
}

/* ctl_deliveries_print: the human-readable form of one record, every field. */
static void ctl_deliveries_print(const delivery_t *d)
{
    char t[40];

    printf("invocation    %s\n", d->invocation_id);
    printf("webhook       %s\n", d->webhook_id);
    printf("event         %s\n", d->event_id ? d->event_id : "-");
    printf("event type    %s\n", d->event_type ? d->event_type : "-");
    printf("status        %s\n", store_status_name(d->status));
    printf("attempts      %d\n", d->earlier_sends + d->attempts);
    printf("next attempt  %s\n", ctl_format_time(d->next_attempt_at, t, sizeof t));
    printf("created       %s\n", ctl_format_time(d->created_at, t, sizeof t));
    printf("updated       %s\n", ctl_format_time(d->updated_at, t, sizeof t));
    printf("duration      %lld ms\n", (long long)d->duration_ms);
    printf("error         %s\n", d->error ? d->error : "-");
    if (d->req_method || d->req_url) {
        printf("\nrequest\n  %s %s\n", d->req_method ? d->req_method : "POST",
               d->req_url ? d->req_url : "");
        ctl_deliveries_headers(d->req_headers);
        if (d->req_body) {
            printf("\n");
            ctl_deliveries_text(d->req_body, strlen(d->req_body));
            printf("\n");
        }
    } else {
        printf("\nrequest       -\n");
    }
    if (d->resp_status || d->resp_headers) {
        printf("\nresponse\n  HTTP %d\n", d->resp_status);
        ctl_deliveries_headers(d->resp_headers);
        if (d->resp_body && d->resp_body_len) {
            printf("\n");
            ctl_deliveries_text(d->resp_body, d->resp_body_len);
            printf("\n");
        }
        if (d->resp_truncated) printf("(truncated)\n");
    } else {
        printf("\nresponse      -\n");
    }
}

/* ctl_deliveries_get: open the store and read one record (exit status on failure). */
static int ctl_deliveries_get(ctl_t *ctl, const char *id, delivery_t *d)
{
    char err[512] = "";
    store_t *st;
    int rc = ctl_store_open(ctl, &st);
    if (rc != 0) return rc;
    memset(d, 0, sizeof *d);
    rc = store_delivery_get(st, id, d, err, sizeof err);
    store_close(st);
    if (rc == -ENOENT) {
        ctl_error(ctl, "no invocation %s", id);
        return CTL_EXIT_FAIL;
    }
    if (rc < 0) {
        ctl_error(ctl, "%s", err[0] ? err : strerror(-rc));
        return CTL_EXIT_FAIL;
    }
    return 0;
}

/* ctl_deliveries_show: hookctl delivery ID [--json]. */
int ctl_deliveries_show(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {0, 0, 0, 0}};
    int as_json = 0, c, rc;
    delivery_t d;

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0) {
        if (c == 'j')
            as_json = 1;
        else
            return CTL_EXIT_USAGE;
    }
    if (argc - optind != 1) return ctl_usage_error(ctl, "expected one invocation ID");
    if ((rc = ctl_deliveries_get(ctl, argv[optind], &d)) != 0) return rc;
    if (as_json) {
        json_t *o = store_delivery_to_json(&d);
        json_dumpf(o, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(o);
    } else {
        ctl_deliveries_print(&d);
    }
    store_delivery_free(&d);
    return CTL_EXIT_OK;
}

int ctl_sched_connect(ctl_t *ctl, client_t *cl)
{
    char err[512] = "";
    if (redeliver_connect(cl, ctl->run_dir, err, sizeof err) < 0) {
        ctl_error(ctl, "%s", err);
        return CTL_EXIT_FAIL;
    }
    return 0;
}

int ctl_sched_redeliver(ctl_t *ctl, client_t *cl, const delivery_t *d)
{
    char err[512] = "";
    if (redeliver_ask(cl, d, err, sizeof err) < 0) {
        ctl_error(ctl, "%s", err);
        return CTL_EXIT_FAIL;
    }
    return 0;
}

/* ctl_deliveries_ask_scheduler: send REDELIVER and wait for its ack. Returns 0 or exit 1. */
static int ctl_deliveries_ask_scheduler(ctl_t *ctl, const delivery_t *d)
{
    client_t cl;
    int rc = ctl_sched_connect(ctl, &cl);
    if (rc) return rc;
    rc = ctl_sched_redeliver(ctl, &cl, d);
    client_close(&cl);
    return rc;
}

/* ctl_deliveries_redeliver: hookctl redeliver ID. */
int ctl_deliveries_redeliver(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{0, 0, 0, 0}};
    delivery_t d;
    int c, rc;

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0)
        return CTL_EXIT_USAGE;
    if (argc - optind != 1) return ctl_usage_error(ctl, "expected one invocation ID");
    if ((rc = ctl_deliveries_get(ctl, argv[optind], &d)) != 0) return rc;
    if (d.req_body == NULL || d.event_id == NULL || d.event_type == NULL) {
        ctl_error(ctl, "%s: nothing to redeliver yet (no attempt made)", d.invocation_id);
        store_delivery_free(&d);
        return CTL_EXIT_FAIL;
    }
    rc = ctl_deliveries_ask_scheduler(ctl, &d);
    if (rc == 0) printf("redelivery of %s scheduled\n", d.invocation_id);
    store_delivery_free(&d);
    return rc;
}

/* ctl_deliveries_prune: hookctl prune [--max-age-days N] [--keep N]. */
int ctl_deliveries_prune(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"max-age-days", required_argument, NULL, 'a'},
                                         {"keep", required_argument, NULL, 'k'},
                                         {0, 0, 0, 0}};
    long days = 30, keep = 0;
    char err[512] = "";
    store_t *st;
    int c, rc;

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0) {
        if (c == 'a' && ctl_parse_long(optarg, 0, 100000, &days) < 0)
            return ctl_usage_error(ctl, "--max-age-days: expected a number from 0 to 100000");
        else if (c == 'k' && ctl_parse_long(optarg, 0, 1000000000, &keep) < 0)
            return ctl_usage_error(ctl, "--keep: expected a number of 0 or more");
        else if (c != 'a' && c != 'k')
            return CTL_EXIT_USAGE;
    }
    if (optind != argc) return ctl_usage_error(ctl, "unexpected argument '%s'", argv[optind]);
    if ((rc = ctl_store_open(ctl, &st)) != 0) return rc;
    rc = store_prune(st, (int64_t)days * 86400 * 1000, (int)keep, err, sizeof err);
    store_close(st);
    if (rc < 0) {
        ctl_error(ctl, "%s", err[0] ? err : strerror(-rc));
        return CTL_EXIT_FAIL;
    }
    printf("pruned %d record%s\n", rc, rc == 1 ? "" : "s");
    return CTL_EXIT_OK;
}
