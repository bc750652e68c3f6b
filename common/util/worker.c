/* worker.c - one thread for blocking work, a FIFO of jobs, and a uv_async that brings each
 * finished job back to the loop. */
#include "util/worker.h"

#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct worker {
    uv_async_t async;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    worker_job_t *todo, **todo_tail; /* queued, not yet run */
    worker_job_t *done, **done_tail; /* run, done not yet called */
    unsigned outstanding;            /* submitted and done not yet called */
    int stop, closing;
};

/* worker_main is the thread: run jobs in order until told to stop with nothing queued. */
static void *worker_main(void *arg)
{
    worker_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->todo && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        worker_job_t *job = w->todo;
        if (!job) break;
        w->todo = job->next;
        if (!w->todo) w->todo_tail = &w->todo;
        pthread_mutex_unlock(&w->mu);
        job->run(job);
        pthread_mutex_lock(&w->mu);
        job->next = NULL;
        *w->done_tail = job;
        w->done_tail = &job->next;
        uv_async_send(&w->async);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* worker_finish calls done for every job the thread has finished. */
static void worker_finish(worker_t *w)
{
    pthread_mutex_lock(&w->mu);
    worker_job_t *job = w->done;
    w->done = NULL;
    w->done_tail = &w->done;
    pthread_mutex_unlock(&w->mu);
    while (job) {
        worker_job_t *next = job->next;
        if (--w->outstanding == 0) uv_unref((uv_handle_t *)&w->async);
        job->done(job); /* may submit again */
        job = next;
    }
}

/* worker_on_async: the thread finished one or more jobs. */
static void worker_on_async(uv_async_t *a)
{
    worker_finish(a->data);
}

/* worker_freed frees the worker once its async handle is closed. */
static void worker_freed(uv_handle_t *h)
{
    free(h->data);
}

int worker_init(worker_t **wp, uv_loop_t *loop)
{
    *wp = NULL;
    worker_t *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->todo_tail = &w->todo;
    w->done_tail = &w->done;
    int rc = uv_async_init(loop, &w->async, worker_on_async);
    if (rc < 0) {
        free(w);
        return rc;
    }
    w->async.data = w;
    uv_unref((uv_handle_t *)&w->async); /* only a job keeps the loop running */
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if ((rc = pthread_create(&w->thread, NULL, worker_main, w)) != 0) {
        log_error("worker: cannot start a thread: %s", strerror(rc));
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        uv_close((uv_handle_t *)&w->async, worker_freed);
        return -rc;
    }
    *wp = w;
    return 0;
}

void worker_submit(worker_t *w, worker_job_t *job)
{
    if (w->closing) {
        job->run(job);
        job->done(job);
        return;
    }
    job->next = NULL;
    if (w->outstanding++ == 0) uv_ref((uv_handle_t *)&w->async); /* keeps the loop alive */
    pthread_mutex_lock(&w->mu);
    *w->todo_tail = job;
    w->todo_tail = &job->next;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int worker_busy(const worker_t *w)
{
    return w->outstanding > 0;
}

void worker_close(worker_t *w)
{
    if (!w || w->closing) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL); /* it runs what is queued first */
    w->closing = 1;
    worker_finish(w);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    uv_close((uv_handle_t *)&w->async, worker_freed);
}
