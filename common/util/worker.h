/* worker.h - a thread of its own for a stage's blocking work (journal writes and fdatasync,
 * reads of old journal segments), in the manner of Redis's bio.c: jobs run one after another on
 * the thread, and each one's completion runs on the loop afterwards, never from the call that
 * queued it. */
#ifndef HL_WORKER_H
#define HL_WORKER_H

#include <uv.h>

typedef struct worker worker_t;

/* A job, embedded in the caller's own struct (it stays the caller's; the worker never frees
 * it). run is called on the worker thread, done on the loop thread once run returned. */
typedef struct worker_job {
    void (*run)(struct worker_job *job);
    void (*done)(struct worker_job *job);
    struct worker_job *next; /* private to the worker */
} worker_job_t;

/* worker_init starts the thread. Returns 0 or a negative errno. */
int worker_init(worker_t **wp, uv_loop_t *loop);
/* worker_submit queues job (FIFO). After worker_close started it runs job and its done at once,
 * on the calling thread. */
void worker_submit(worker_t *w, worker_job_t *job);
/* worker_busy: 1 while a job is queued, running, or waiting for its done. */
int worker_busy(const worker_t *w);
/* worker_close waits for every queued job to run, calls their done callbacks on the calling
 * thread, stops the thread, and frees w once its loop handle is closed. */
void worker_close(worker_t *w);

#endif
