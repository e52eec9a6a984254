/* SPDX-License-Identifier: MIT */
/*
 * The writers of the imports. Reading a layer stream is one sequential job
 * (decompress, hash, parse); what each regular file costs afterwards is
 * file-system work: its content object (a temporary file, a write, a
 * link), then its layer-folder file (a create, the size, two overlayfs
 * marks, the metadata). Those are independent per file, so worker threads
 * do them while the reading thread goes on: the file is staged where the
 * layer folder will have it, ahead of the checks that need the whole
 * stream. Nothing there is published: the staging folder is the store's
 * tmp/, dropped when the import fails. The checks still decide; the
 * builder then adds what only they can place (folders' metadata, hard
 * links, symlinks, whiteouts) around the files already there.
 *
 * Ordering: results come back in submission order, and only the reading
 * thread touches the import's records, the allocator and the progress
 * callback. A worker allocates nothing; it may log (a hash collision, a
 * missing privilege). A failed job's error record is carried over to the
 * reading thread, and the jobs queued behind it are skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "layer/internal.h"

#define SLOTS	     256
#define MAX_INFLIGHT (64u << 20)
#define MAX_THREADS  4
#define FLUSH_EVERY  (32u << 20)

enum {
	FREE,
	QUEUED,
	DONE
};

typedef struct job {
	lam__entry e;	  /* borrowed strings */
	void *data;	  /* owned; freed by the reading thread */
	uint64_t counted; /* bytes of data counted in flight */
	size_t tag;
	int state;
	lam__writer_result res;
} job;

typedef struct worker {
	lam__writers *jobs;
	pthread_t thread;
	char *scratch; /* LAM__OBJECT_SCRATCH bytes */
	int dirfd;     /* the folder of the last file staged */
	size_t dirlen;
	char dir[PATH_MAX];
} worker;

struct lam__writers {
	lam_store *s;
	int fsfd;
	lam__stager st;
	lam__writer_cb cb;
	void *ctx;
	pthread_mutex_t mu;
	pthread_cond_t more;  /* a job was queued, or stop */
	pthread_cond_t done;  /* a job finished */
	pthread_cond_t flush; /* enough was written to flush */
	uint64_t unflushed;
	bool flusher_on;
	pthread_t flusher;
	job slots[SLOTS];
	size_t head;	      /* jobs queued so far */
	size_t take;	      /* jobs taken by workers */
	size_t tail;	      /* jobs reaped */
	size_t unreaped;      /* jobs done, not yet reaped */
	unsigned int new_run; /* objects stored new in a row (atomic) */
	bool waiting;	      /* the reading thread waits for results */
	uint64_t inflight;
	bool stop;
	int err; /* the first error, of a job or of cb */
	lam__error_saved saved;
	worker *w;
	unsigned int nw;       /* workers' states (at least one) */
	unsigned int nthreads; /* threads running them; 0: inline */
};

/* ---- staging one file ---- */

/* The folder path (len bytes, below fs/) open, made on the way as needed;
 * -2 when something that is not a folder stands in the way (the checks
 * will refuse the archive, or place the file themselves). */
static int open_dir(lam__writers *j, const char *path, size_t len)
{
	int fd = lam__open_dir_beneath(j->fsfd, path, len, true);
	if (fd >= 0)
		return fd;
	if (errno == ENOTDIR || errno == ELOOP || errno == EXDEV ||
	    errno == ENAMETOOLONG)
		return -2;
	return lam__error_errno(errno, "staging folder %.*s", (int)len, path);
}

/* 1 when e is staged, 0 when it was left to the builder, <0 on error. */
static int stage(worker *w, const lam__entry *e)
{
	lam__writers *j = w->jobs;
	size_t pl = 0;
	for (size_t k = e->path_len; k > 0; k--)
		if (e->path[k - 1] == '/') {
			pl = k - 1;
			break;
		}
	if (e->path_len == 0 || pl >= sizeof(w->dir))
		return 0;
	if (w->dirfd < 0 || w->dirlen != pl ||
	    memcmp(w->dir, e->path, pl) != 0) {
		lam__close(&w->dirfd);
		int fd = open_dir(j, e->path, pl);
		if (fd == -2)
			return 0;
		if (fd < 0)
			return fd;
		w->dirfd = fd;
		w->dirlen = pl;
		memcpy(w->dir, e->path, pl);
	}
	const char *name = e->path + pl + (pl ? 1 : 0);
	int fd = openat(w->dirfd, name,
			O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			0600);
	if (fd < 0) {
		if (errno == EEXIST || errno == ENAMETOOLONG)
			return 0;
		return lam__error_errno(errno, "staging %s", e->path);
	}
	int rc = lam__stage_file_fd(&j->st, fd, e);
	close(fd);
	lam__crash_point();
	return rc < 0 ? rc : 1;
}

static int run(worker *w, job *jb)
{
	lam__writers *j = w->jobs;
	lam__writer_result *r = &jb->res;
	memset(r, 0, sizeof(*r));
	r->tag = jb->tag;
	int rc = 0;
	if (jb->data != NULL) {
		/* After a run of new objects, expect new ones: a fresh
		 * image's files are, a re-imported layer's are not. */
		bool expect_new =
			__atomic_load_n(&j->new_run, __ATOMIC_RELAXED) >= 16;
		rc = lam__object_put_buf(j->s, jb->data, (size_t)jb->e.size,
					 w->scratch, expect_new, &jb->e.obj,
					 &r->stored);
		if (rc == 0 && r->stored)
			__atomic_add_fetch(&j->new_run, 1, __ATOMIC_RELAXED);
		else if (rc == 0)
			__atomic_store_n(&j->new_run, 0, __ATOMIC_RELAXED);
		if (rc < 0)
			return lam__error_prefix(rc, "file %s", jb->e.path);
		jb->e.flags |= LAM__E_OBJECT;
		r->obj = jb->e.obj;
		r->has_obj = true;
	}
	if (j->fsfd >= 0) {
		rc = stage(w, &jb->e);
		if (rc < 0)
			return rc;
		r->staged = rc == 1;
	}
	return 0;
}

/* ---- the queue ---- */

/* Hand finished jobs to cb, in order; called with mu held. */
static void reap_locked(lam__writers *j)
{
	while (j->tail < j->head) {
		job *jb = &j->slots[j->tail % SLOTS];
		if (jb->state != DONE)
			break;
		if (j->cb != NULL) {
			int rc = j->cb(j->ctx, &jb->res);
			if (rc < 0 && j->err == 0) {
				j->err = rc;
				lam__error_save(&j->saved);
			}
		}
		lam__free(jb->data);
		jb->data = NULL;
		j->unreaped--;
		j->inflight -= jb->counted;
		jb->state = FREE;
		j->tail++;
	}
}

static void *work(void *arg)
{
	worker *w = arg;
	lam__writers *j = w->jobs;
	pthread_mutex_lock(&j->mu);
	for (;;) {
		while (!j->stop && j->take == j->head)
			pthread_cond_wait(&j->more, &j->mu);
		if (j->take == j->head)
			break;
		job *jb = &j->slots[j->take++ % SLOTS];
		bool skip = j->err != 0;
		pthread_mutex_unlock(&j->mu);
		int rc = 0;
		if (!skip) {
			lam__error_reset();
			rc = run(w, jb);
		} else {
			memset(&jb->res, 0, sizeof(jb->res));
			jb->res.tag = jb->tag;
		}
		pthread_mutex_lock(&j->mu);
		if (rc < 0 && j->err == 0) {
			j->err = rc;
			lam__error_save(&j->saved);
		}
		/* Content the job or the reader wrote (or found stored). */
		j->unflushed += jb->e.size;
		if (j->unflushed >= FLUSH_EVERY)
			pthread_cond_signal(&j->flush);
		jb->state = DONE;
		/* Wake the reader for a batch of results, not for each:
		 * a quarter of the queue, or the last jobs, or an error. */
		j->unreaped++;
		if (j->waiting && (j->unreaped >= SLOTS / 4 ||
				   j->take == j->head || j->err != 0))
			pthread_cond_signal(&j->done);
	}
	pthread_mutex_unlock(&j->mu);
	lam__close(&w->dirfd);
	return NULL;
}

/* Write-back in the background: the layer is durable only after the
 * builder's syncfs, but left to then, 200 MB of new files is a quarter of a
 * second of waiting at the end with idle CPUs. A syncfs per 32 MiB
 * written, in a thread of its own, overlaps that with the reading and the
 * workers, and the final syncfs finds little left. (It also starts the
 * write-back of other dirty data on the file system, which that final
 * syncfs would have waited for anyway.) */
static void *flusher(void *arg)
{
	lam__writers *j = arg;
	pthread_mutex_lock(&j->mu);
	for (;;) {
		while (!j->stop && j->unflushed < FLUSH_EVERY)
			pthread_cond_wait(&j->flush, &j->mu);
		if (j->stop)
			break;
		j->unflushed = 0;
		pthread_mutex_unlock(&j->mu);
		/* Errors are the final syncfs's to report. */
		(void)syncfs(j->fsfd);
		pthread_mutex_lock(&j->mu);
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

unsigned int lam__writers_default_threads(void)
{
	/* The CPUs this thread may run on (a container's cpuset), not the
	 * machine's. */
	cpu_set_t set;
	long n = sched_getaffinity(0, sizeof(set), &set) == 0 ?
			 CPU_COUNT(&set) :
			 sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 2)
		return 0;
	return n > MAX_THREADS ? MAX_THREADS : (unsigned int)n;
}

int lam__writers_start(lam__writers **out, lam_store *s, int fsfd,
		       unsigned int threads, lam__writer_cb cb, void *ctx)
{
	*out = NULL;
	if (threads > MAX_THREADS)
		threads = MAX_THREADS;
	lam__writers *j = lam__calloc(1, sizeof(*j));
	unsigned int nw = threads ? threads : 1;
	worker *w = lam__calloc(nw, sizeof(*w));
	if (j == NULL || w == NULL) {
		lam__free(j);
		lam__free(w);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->more, NULL);
	pthread_cond_init(&j->done, NULL);
	pthread_cond_init(&j->flush, NULL);
	j->s = s;
	j->fsfd = fsfd;
	j->cb = cb;
	j->ctx = ctx;
	j->w = w;
	j->nw = nw;
	if (fsfd >= 0)
		lam__stager_init(&j->st, s, fsfd);
	for (unsigned int i = 0; i < nw; i++) {
		w[i].jobs = j;
		w[i].dirfd = -1;
	}
	for (unsigned int i = 0; i < nw; i++) {
		w[i].scratch = lam__malloc(LAM__OBJECT_SCRATCH);
		if (w[i].scratch == NULL) {
			lam__writers_free(j);
			return lam__error(LAM_ENOMEM, "out of memory");
		}
	}
	/* The workers take no signals: the host's handlers run in its own
	 * threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned int i = 0; i < threads; i++) {
		if (pthread_create(&w[i].thread, NULL, work, &w[i]) != 0)
			break;
		j->nthreads++;
	}
	if (j->nthreads > 0 && fsfd >= 0 &&
	    pthread_create(&j->flusher, NULL, flusher, j) == 0)
		j->flusher_on = true;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (threads != 0 && j->nthreads == 0)
		lam__log(LAM_LOG_INFO, "no worker threads: importing in the "
				       "calling thread");
	*out = j;
	return 0;
}

/* The first error, in the calling thread's record. */
static int failed(lam__writers *j)
{
	lam__error_restore(&j->saved);
	return j->err;
}

int lam__writers_submit(lam__writers *j, size_t tag, const lam__entry *e,
			void *data)
{
	uint64_t size = data ? e->size : 0;
	pthread_mutex_lock(&j->mu);
	reap_locked(j);
	while (j->err == 0 && j->tail < j->head &&
	       (j->head - j->tail == SLOTS ||
		j->inflight + size > MAX_INFLIGHT)) {
		/* Whatever is queued must be running for room to come. */
		pthread_cond_broadcast(&j->more);
		j->waiting = true;
		pthread_cond_wait(&j->done, &j->mu);
		j->waiting = false;
		reap_locked(j);
	}
	if (j->err != 0) {
		pthread_mutex_unlock(&j->mu);
		lam__free(data);
		return failed(j);
	}
	job *jb = &j->slots[j->head % SLOTS];
	jb->e = *e;
	jb->data = data;
	jb->counted = size;
	jb->tag = tag;
	jb->state = QUEUED;
	j->inflight += size;
	j->head++;
	if (j->nthreads == 0) {
		/* No workers: the job runs now, in this thread. */
		j->take++;
		pthread_mutex_unlock(&j->mu);
		int rc = run(&j->w[0], jb);
		pthread_mutex_lock(&j->mu);
		if (rc < 0) {
			j->err = rc;
			lam__error_save(&j->saved);
		}
		jb->state = DONE;
		j->unreaped++;
		reap_locked(j);
	} else if (j->head - j->take >= 4 || size >= (256u << 10)) {
		/* Wake a worker for a few jobs at a time (finish wakes
		 * them for the rest). */
		pthread_cond_signal(&j->more);
	}
	int rc = j->err;
	pthread_mutex_unlock(&j->mu);
	return rc ? failed(j) : 0;
}

int lam__writers_finish(lam__writers *j)
{
	pthread_mutex_lock(&j->mu);
	pthread_cond_broadcast(&j->more);
	reap_locked(j);
	while (j->tail < j->head) {
		j->waiting = true;
		pthread_cond_wait(&j->done, &j->mu);
		j->waiting = false;
		reap_locked(j);
	}
	int rc = j->err;
	pthread_mutex_unlock(&j->mu);
	return rc ? failed(j) : 0;
}

void lam__writers_free(lam__writers *j)
{
	if (j == NULL)
		return;
	pthread_mutex_lock(&j->mu);
	/* Jobs not yet run are skipped; those that ran are reported. */
	if (j->tail < j->head && j->err == 0)
		j->err = LAM_ERROR;
	j->stop = true;
	pthread_cond_broadcast(&j->more);
	pthread_cond_broadcast(&j->flush);
	pthread_mutex_unlock(&j->mu);
	for (unsigned int i = 0; i < j->nthreads; i++)
		pthread_join(j->w[i].thread, NULL);
	if (j->flusher_on)
		pthread_join(j->flusher, NULL);
	/* The last results still reach cb (objects to take back), but
	 * whatever it says of skipped jobs must not replace the caller's
	 * error. */
	lam__error_saved keep;
	lam__error_save(&keep);
	pthread_mutex_lock(&j->mu);
	reap_locked(j);
	pthread_mutex_unlock(&j->mu);
	lam__error_restore(&keep);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->more);
	pthread_cond_destroy(&j->done);
	pthread_cond_destroy(&j->flush);
	for (unsigned int i = 0; i < j->nw; i++) {
		lam__close(&j->w[i].dirfd);
		lam__free(j->w[i].scratch);
	}
	lam__free(j->w);
	lam__free(j);
}
