/* main.c - hookctl, the operator's tool: global flags (--data-dir, --help, --version), then a
 * dispatch table of subcommands, each implemented in its own ctl_*.c file. */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ctl_command {
    const char *name;
    ctl_cmd_fn run;
    const char *usage; /* lines after "usage: hookctl " */
    const char *help;
} ctl_command_t;

static const ctl_command_t main_commands[] = {
    {"import", ctl_config_import, "import FILE|-",
     "Validate a configuration file and replace the whole configuration with it.\n"
     "Nothing changes when anything in the file is wrong (exit 2)."},
    {"export", ctl_config_export, "export [--with-secrets]",
     "Print the configuration in the import format; credentials and signing secrets\n"
     "are shown as \"***\" unless --with-secrets."},
    {"webhook", ctl_config_webhook,
     "webhook add --project P --id ID --url URL --event TYPE [--event TYPE...]\n"
     "                   [--name NAME] [--auth none|basic|api_key|bearer]\n"
     "                   [--username U --password-file F | --key-file F | --token-file F]\n"
     "                   [--secret-file F] [--disabled]\n"
     "       hookctl webhook add --project P --json '{...}'|@FILE|-\n"
     "       hookctl webhook update ID [--url URL] [--name NAME] [--event TYPE...]\n"
     "                   [--auth ...] [credential flags] [--secret-file F]\n"
     "                   [--enabled|--disabled] [--json '{...some fields...}'|@FILE|-]\n"
     "       hookctl webhook rm|enable|disable ID\n"
     "       hookctl webhook list [--json]",
     "Change or list single webhooks. --auth defaults to the kind of credential given.\n"
     "Credentials and secrets are best read from a file or standard input (F = -):\n"
     "--password-file, --key-file, --token-file, --secret-file; --password, --key,\n"
     "--token and --secret also take the value itself, which ps shows to every local\n"
     "user. update changes only what is given: --event replaces the list, an --auth or\n"
     "credential flag the auth (credentials of the same type not given are kept), and\n"
     "in --json \"***\" keeps the stored value. list never shows credentials or secrets."},
    {"publish", ctl_publish_run, "publish [FILE|-]",
     "Send JSON Lines events to run/ingest.sock. Prints \"line N: reason\" for each\n"
     "rejected line and a summary on stderr (lines, accepted, duplicates, rejected); a\n"
     "duplicate is an event whose id was accepted within ingest's --dedupe-window: it is\n"
     "not delivered again. Exit 0 when all were accepted or duplicates, 2 when some\n"
     "were rejected, 1 when ingest is unreachable or the connection dropped, 130 on\n"
     "Ctrl-C (SIGINT), after printing the summary so far."},
    {"render", ctl_render_run, "render [FILE|-]",
     "Normalize, match and build payloads in-process (no daemons, nothing sent): one\n"
     "JSON object per (event, matching webhook): invocation_id, webhook_id, event_type,\n"
     "url, headers (credentials masked), body."},
    {"status", ctl_status_run, "status [--json]",
     "Ask every stage instance in run/ for its state and figures. Exit 0 when at least\n"
     "one instance of each of ingest, router, sender and scheduler answered, else 1."},
    {"deliveries", ctl_deliveries_list,
     "deliveries [--webhook ID] [--event ID] [--status S] [--limit N] [--json]",
     "List delivery records, newest first (default limit 100). Status is pending,\n"
     "retrying, succeeded or failed. --json prints one object per line."},
    {"delivery", ctl_deliveries_show, "delivery ID [--json]",
     "Show one delivery record with its last request and response. Exit 1 when unknown."},
    {"redeliver", ctl_deliveries_redeliver, "redeliver ID",
     "Ask the scheduler to send an invocation again, with the same invocation id."},
    {"recover", ctl_recover_run, "recover --webhook ID --since TIME",
     "Send again every invocation of the webhook that ended failed at or after TIME (RFC\n"
     "3339, e.g. 2026-12-01T10:00:00Z), as redeliver does, and print how many. The\n"
     "webhook must exist and be enabled."},
    {"prune", ctl_deliveries_prune, "prune [--max-age-days N] [--keep N]",
     "Delete delivery records older than N days (default 30, 0 = no age limit) and keep\n"
     "at most N per webhook (default 0 = no limit)."},
    {"token", ctl_token_run,
     "token create --name NAME [--project P]\n"
     "       hookctl token list [--json]\n"
     "       hookctl token revoke NAME",
     "hook-api's bearer tokens. create prints a new token (hlt_...) once on stdout: the\n"
     "store keeps only its hash. Without --project it is an admin token (every project,\n"
     "may create and delete projects); with one, it reaches that project alone. Exit 1\n"
     "when the name is taken. list shows names, projects, kinds (api, or portal for the\n"
     "console's links), states and times, never tokens. revoke ends a token at once, in\n"
     "every hook-api; exit 1 when no token has that name."},
};
#define MAIN_NCOMMANDS (sizeof main_commands / sizeof main_commands[0])

/* main_usage: the general help. */
static void main_usage(FILE *out)
{
    fprintf(out, "usage: hookctl [--data-dir DIR] COMMAND [ARGS]\n\n"
                 "hookline's operator tool. DIR defaults to $HOOKLINE_DATA, else ./var.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < MAIN_NCOMMANDS; i++)
        fprintf(out, "  hookctl %s\n", main_commands[i].usage);
    fprintf(out, "\n'hookctl COMMAND --help' for details. Exit status: 0 success, 1 runtime "
                 "failure, 2 usage or bad input.\n");
}

/* main_command_help: one command's help on stdout. */
static void main_command_help(const ctl_command_t *c)
{
    printf("usage: hookctl %s\n\n%s\n\nGlobal: --data-dir DIR (default $HOOKLINE_DATA, else "
           "./var).\n",
           c->usage, c->help);
}

/* main_find: the table entry for a command name. */
static const ctl_command_t *main_find(const char *name)
{
    for (size_t i = 0; i < MAIN_NCOMMANDS; i++)
        if (strcmp(main_commands[i].name, name) == 0) return &main_commands[i];
    return NULL;
}

/* main: take out the global flags wherever they are, then dispatch. */
int main(int argc, char **argv)
{
    static ctl_t ctl;
    char **args = calloc((size_t)argc + 1, sizeof *args);
    int nargs = 0, help = 0, version = 0, dashdash = 0;
    const ctl_command_t *cmd = NULL;
    const char *cmd_name = NULL;

    if (args == NULL) return CTL_EXIT_FAIL;
    args[nargs++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!dashdash && strcmp(a, "--") == 0) {
            dashdash = 1;
            args[nargs++] = argv[i];
        } else if (!dashdash && strcmp(a, "--data-dir") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hookctl: --data-dir needs a value\n");
                return CTL_EXIT_USAGE;
            }
            ctl.data_dir = argv[++i];
        } else if (!dashdash && strncmp(a, "--data-dir=", 11) == 0) {
            ctl.data_dir = a + 11;
        } else if (!dashdash && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            help = 1;
        } else if (!dashdash && strcmp(a, "--version") == 0) {
            version = 1;
        } else {
            if (cmd_name == NULL && a[0] != '-') cmd_name = a;
            args[nargs++] = argv[i];
        }
    }
    if (version) {
        printf("hookline %s\n", HOOKLINE_VERSION);
        return CTL_EXIT_OK;
    }
    if (cmd_name && strcmp(cmd_name, "help") == 0) {
        help = 1;
        cmd_name = nargs > 2 ? args[2] : NULL;
    }
    if (cmd_name) cmd = main_find(cmd_name);
    if (help) {
        if (cmd)
            main_command_help(cmd);
        else
            main_usage(stdout);
        return CTL_EXIT_OK;
    }
    if (cmd == NULL || args[1] != cmd_name) {
        if (nargs > 1 && args[1][0] == '-')
            fprintf(stderr, "hookctl: unknown option '%s'\nTry 'hookctl --help'.\n", args[1]);
        else if (cmd_name && cmd == NULL)
            fprintf(stderr, "hookctl: unknown command '%s'\nTry 'hookctl --help'.\n", cmd_name);
        else
            main_usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (ctl.data_dir == NULL || ctl.data_dir[0] == '\0') ctl.data_dir = getenv("HOOKLINE_DATA");
    if (ctl.data_dir == NULL || ctl.data_dir[0] == '\0') ctl.data_dir = "./var";
    if ((size_t)snprintf(ctl.db_path, sizeof ctl.db_path, "%s/hookline.db", ctl.data_dir) >=
            sizeof ctl.db_path ||
        (size_t)snprintf(ctl.run_dir, sizeof ctl.run_dir, "%s/run", ctl.data_dir) >=
            sizeof ctl.run_dir) {
        fprintf(stderr, "hookctl: --data-dir: path too long\n");
        return CTL_EXIT_USAGE;
    }
    ctl.cmd = cmd->name;
    /* Only these may create the store; anything else on a data dir without one is a mistake. */
    int creates = strcmp(cmd->name, "import") == 0 ||
                  (strcmp(cmd->name, "webhook") == 0 && nargs > 2 && strcmp(args[2], "add") == 0) ||
                  (strcmp(cmd->name, "token") == 0 && nargs > 2 && strcmp(args[2], "create") == 0);
    int rc = creates ? CTL_EXIT_OK : ctl_store_required(&ctl);
    if (rc == CTL_EXIT_OK) rc = cmd->run(&ctl, nargs - 1, args + 1);
    fflush(stdout);
    if (ferror(stdout) && rc == CTL_EXIT_OK) {
        fprintf(stderr, "hookctl: %s: error writing output\n", cmd->name);
        rc = CTL_EXIT_FAIL;
    }
    free(args);
    return rc;
}
