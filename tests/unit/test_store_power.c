/* test_store_power.c - the delivery log under a power loss: an SQLite VFS shim keeps, for the
 * database and its WAL, the image each had at its last fsync; at the "power loss" point the
 * connection is dropped without writing, every file goes back to that image, and the -shm goes.
 * A commit made with store_set_durable(1) (what the sender does under --fsync always and batch,
 * before it sends JOB_DONE) must survive; the same commit with durable 0 (--fsync off) is lost,
 * which shows the model drops what was never synced. */
#include "check.h"
#include "domain/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One tracked file (database or WAL): its durable image. */
typedef struct pl_image {
    char path[512];
    unsigned char *data;
    sqlite3_int64 size;
    int used;
} pl_image_t;

typedef struct pl_file {
    sqlite3_file base;
    pl_image_t *img; /* NULL: not tracked */
    sqlite3_file *real;
} pl_file_t;

static sqlite3_vfs *pl_real_vfs;
static pl_image_t pl_images[8];
static int pl_dead;  /* after the power loss: nothing reaches the disk any more */
static int pl_syncs; /* xSync calls on tracked files */
static sqlite3_io_methods pl_methods;

/* pl_snapshot copies the file's current content into its image (it was just synced). */
static int pl_snapshot(pl_file_t *f)
{
    sqlite3_int64 size = 0;
    int rc = f->real->pMethods->xFileSize(f->real, &size);
    if (rc != SQLITE_OK) return rc;
    unsigned char *d = malloc(size ? (size_t)size : 1);
    if (!d) return SQLITE_NOMEM;
    if (size && (rc = f->real->pMethods->xRead(f->real, d, (int)size, 0)) != SQLITE_OK) {
        free(d);
        return rc;
    }
    free(f->img->data);
    f->img->data = d;
    f->img->size = size;
    return SQLITE_OK;
}

static int pl_close(sqlite3_file *p)
{
    pl_file_t *f = (pl_file_t *)p;
    int rc = f->real->pMethods->xClose(f->real);
    free(f->real);
    return rc;
}
static int pl_read(sqlite3_file *p, void *b, int n, sqlite3_int64 off)
{
    pl_file_t *f = (pl_file_t *)p;
    return f->real->pMethods->xRead(f->real, b, n, off);
}
static int pl_write(sqlite3_file *p, const void *b, int n, sqlite3_int64 off)
{
    pl_file_t *f = (pl_file_t *)p;
    if (pl_dead) return SQLITE_OK;
    return f->real->pMethods->xWrite(f->real, b, n, off);
}
static int pl_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    pl_file_t *f = (pl_file_t *)p;
    if (pl_dead) return SQLITE_OK;
    return f->real->pMethods->xTruncate(f->real, size);
}
static int pl_sync(sqlite3_file *p, int flags)
{
    pl_file_t *f = (pl_file_t *)p;
    if (pl_dead) return SQLITE_OK;
    int rc = f->real->pMethods->xSync(f->real, flags);
    if (rc == SQLITE_OK && f->img) {
        pl_syncs++;
        rc = pl_snapshot(f);
    }
    return rc;
}
static int pl_size(sqlite3_file *p, sqlite3_int64 *s)
{
    pl_file_t *f = (pl_file_t *)p;
    return f->real->pMethods->xFileSize(f->real, s);
}
static int pl_lock(sqlite3_file *p, int l)
{
    pl_file_t *f = (pl_file_t *)p;
    return f->real->pMethods->xLock(f->real, l);
}
static int pl_unlock(sqlite3_file *p, int l)
{
    pl_file_t *f = (pl_file_t *)p;
    return f->real->pMethods->xUnlock(f->real, l);
}
static int pl_check(sqlite3_file *p, int *r)
{
    pl_file_t *f = (pl_file_t *)p;
    return f->real->pMethods->xCheckReservedLock(f->real, r);
}
static int pl_fcntl(sqlite3_file *p, int op, void *a)
{
    pl_file_t *f = (pl_file_t *)p;
    return f->real->pMethods->xFileControl(f->real, op, a);
}
static int pl_sector(sqlite3_file *p)
{
    pl_file_t *f = (pl_file_t *)p;
    return f->real->pMethods->xSectorSize(f->real);
}
static int pl_dev(sqlite3_file *p)
{
    pl_file_t *f = (pl_file_t *)p;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}
static int pl_shm_map(sqlite3_file *p, int pg, int sz, int ext, void volatile **pp)
{
    pl_file_t *f = (pl_file_t *)p;
    return f->real->pMethods->xShmMap(f->real, pg, sz, ext, pp);
}
static int pl_shm_lock(sqlite3_file *p, int off, int n, int flags)
{
    pl_file_t *f = (pl_file_t *)p;
    return f->real->pMethods->xShmLock(f->real, off, n, flags);
}
static void pl_shm_barrier(sqlite3_file *p)
{
    pl_file_t *f = (pl_file_t *)p;
    f->real->pMethods->xShmBarrier(f->real);
}
static int pl_shm_unmap(sqlite3_file *p, int del)
{
    pl_file_t *f = (pl_file_t *)p;
    return f->real->pMethods->xShmUnmap(f->real, del);
}

static int pl_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags, int *out)
{
    pl_file_t *f = (pl_file_t *)p;
    memset(f, 0, sizeof *f);
    if (!(f->real = calloc(1, (size_t)pl_real_vfs->szOsFile))) return SQLITE_NOMEM;
    int rc = pl_real_vfs->xOpen(pl_real_vfs, name, f->real, flags, out);
    if (rc != SQLITE_OK) {
        free(f->real);
        f->real = NULL;
        return rc;
    }
    f->base.pMethods = &pl_methods;
    if (name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL))) {
        pl_image_t *img = NULL;
        for (int i = 0; i < 8 && !img; i++)
            if (pl_images[i].used && strcmp(pl_images[i].path, name) == 0) img = &pl_images[i];
        for (int i = 0; i < 8 && !img; i++)
            if (!pl_images[i].used) {
                img = &pl_images[i];
                img->used = 1;
                snprintf(img->path, sizeof img->path, "%s", name);
                f->img = img;
                pl_snapshot(f); /* what was there before we came is durable */
            }
        f->img = img;
    }
    return SQLITE_OK;
}
static int pl_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
    if (pl_dead) return SQLITE_OK;
    return pl_real_vfs->xDelete(pl_real_vfs, name, sync);
}
static int pl_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    return pl_real_vfs->xAccess(pl_real_vfs, name, flags, out);
}
static int pl_full(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    return pl_real_vfs->xFullPathname(pl_real_vfs, name, n, out);
}
static int pl_random(sqlite3_vfs *vfs, int n, char *out)
{
    return pl_real_vfs->xRandomness(pl_real_vfs, n, out);
}
static int pl_sleep(sqlite3_vfs *vfs, int us)
{
    return pl_real_vfs->xSleep(pl_real_vfs, us);
}
static int pl_time(sqlite3_vfs *vfs, double *t)
{
    return pl_real_vfs->xCurrentTime(pl_real_vfs, t);
}
static int pl_lasterr(sqlite3_vfs *vfs, int n, char *out)
{
    return pl_real_vfs->xGetLastError ? pl_real_vfs->xGetLastError(pl_real_vfs, n, out) : 0;
}

static sqlite3_vfs pl_vfs = {
    .iVersion = 1,
    .mxPathname = 512,
    .zName = "powerloss",
    .xOpen = pl_open,
    .xDelete = pl_delete,
    .xAccess = pl_access,
    .xFullPathname = pl_full,
    .xRandomness = pl_random,
    .xSleep = pl_sleep,
    .xCurrentTime = pl_time,
    .xGetLastError = pl_lasterr,
};

/* pl_install makes the shim the default VFS, forgetting every image. */
static void pl_install(void)
{
    pl_real_vfs = sqlite3_vfs_find("unix");
    pl_vfs.szOsFile = (int)sizeof(pl_file_t);
    pl_methods = (sqlite3_io_methods){
        .iVersion = 2,
        .xClose = pl_close,
        .xRead = pl_read,
        .xWrite = pl_write,
        .xTruncate = pl_truncate,
        .xSync = pl_sync,
        .xFileSize = pl_size,
        .xLock = pl_lock,
        .xUnlock = pl_unlock,
        .xCheckReservedLock = pl_check,
        .xFileControl = pl_fcntl,
        .xSectorSize = pl_sector,
        .xDeviceCharacteristics = pl_dev,
        .xShmMap = pl_shm_map,
        .xShmLock = pl_shm_lock,
        .xShmBarrier = pl_shm_barrier,
        .xShmUnmap = pl_shm_unmap,
    };
    for (int i = 0; i < 8; i++) {
        free(pl_images[i].data);
        memset(&pl_images[i], 0, sizeof pl_images[i]);
    }
    pl_dead = 0;
    pl_syncs = 0;
    sqlite3_vfs_register(&pl_vfs, 1);
}

/* pl_power_loss drops the connection without a write, puts every tracked file back to its
 * last synced image, removes the shared-memory index, and uninstalls the shim. */
static void pl_power_loss(store_t *s, const char *db)
{
    char shm[600];
    pl_dead = 1;
    store_close(s);
    for (int i = 0; i < 8; i++) {
        pl_image_t *img = &pl_images[i];
        if (!img->used) continue;
        int fd = open(img->path, O_WRONLY | O_CREAT, 0600);
        if (fd < 0 || ftruncate(fd, img->size) < 0 ||
            (img->size && pwrite(fd, img->data, (size_t)img->size, 0) != img->size))
            perror(img->path);
        if (fd >= 0) close(fd);
    }
    snprintf(shm, sizeof shm, "%s-shm", db);
    unlink(shm);
    sqlite3_vfs_unregister(&pl_vfs);
    pl_dead = 0;
}

/* succeeded_rows counts succeeded records after a restart. */
static int succeeded_rows(const char *db)
{
    char err[256];
    store_t *s;
    int n = 0;
    if (store_open(&s, db, err, sizeof err) < 0) {
        fprintf(stderr, "reopen: %s\n", err);
        return -1;
    }
    for (int i = 0; i < 50; i++) {
        char inv[32];
        delivery_t d;
        snprintf(inv, sizeof inv, "inv_%02d", i);
        if (store_delivery_get(s, inv, &d, err, sizeof err) == 0) {
            n += d.status == DLV_SUCCEEDED;
            store_delivery_free(&d);
        }
    }
    store_close(s);
    return n;
}

/* run_case: a fresh log, then batches of successes committed as the sender does, then power
 * loss right after the last commit returned (where JOB_DONE would go). Returns the successes
 * left after the restart. */
static int run_case(const char *dir, int durable, int *syncs)
{
    char db[300], err[256], cmd[1000];
    store_t *s;
    snprintf(db, sizeof db, "%s/case%d.db", dir, durable);
    snprintf(cmd, sizeof cmd, "rm -f '%s' '%s-wal' '%s-shm'", db, db, db);
    if (system(cmd) != 0) return -1;
    /* The empty store exists, checkpointed, before the power model starts. */
    if (store_open(&s, db, err, sizeof err) < 0) return -1;
    store_close(s);
    pl_install();
    if (store_open(&s, db, err, sizeof err) < 0 || store_set_durable(s, durable, err, sizeof err)) {
        fprintf(stderr, "open: %s\n", err);
        return -1;
    }
    for (int b = 0; b < 5; b++) {
        CHECK_INT(store_begin(s, err, sizeof err), 0);
        for (int i = 0; i < 10; i++) {
            char inv[32];
            delivery_t d = {0};
            snprintf(inv, sizeof inv, "inv_%02d", b * 10 + i);
            d.invocation_id = inv;
            d.webhook_id = "wh_1";
            d.event_id = inv;
            d.event_type = "opportunity.won";
            d.status = DLV_SUCCEEDED;
            d.attempts = 1;
            d.req_method = "POST";
            d.req_body = "{}";
            d.resp_status = 200;
            CHECK_INT(store_delivery_record(s, &d, err, sizeof err), 0);
        }
        CHECK_INT(store_commit(s, err, sizeof err), 0); /* JOB_DONE would go now */
    }
    *syncs = pl_syncs;
    pl_power_loss(s, db);
    return succeeded_rows(db);
}

int main(void)
{
    char dir[] = "/tmp/hl-test-power-XXXXXX", cmd[300];
    int syncs = 0;
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    /* --fsync always / batch: every committed success survives; one WAL sync per commit. */
    CHECK_INT(run_case(dir, 1, &syncs), 50);
    CHECK(syncs >= 5);
    /* --fsync off: the commits were not synced (at most the WAL's creation was), so the model
     * loses all 50: it does drop what a power loss drops. */
    CHECK_INT(run_case(dir, 0, &syncs), 0);
    CHECK(syncs < 5);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("store_power");
}
