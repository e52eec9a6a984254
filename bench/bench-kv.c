/* SPDX-License-Identifier: MIT */
/*
 * bench-kv: lamina's registry-style key/value namespace against LMDB (and
 * SQLite for durable commits), same keys, same run.
 *
 *  1. Random gets of N values (1,000,000 by default: 1,000 keys of 1,000
 *     values) through a chain of 1, 16, 64 and 500 layers, each layer
 *     holding an equal share of the values, against one LMDB database
 *     holding "key\value" -> data. lamina is timed by path
 *     (lam_kv_get_value) and through open key handles
 *     (lam_key_get_value); the time to open the chain (merge the layers)
 *     is reported apart. Target: 64 layers at least as fast as LMDB.
 *  2. A durable transaction of 10 value writes: lam_kv_txn_begin/commit
 *     (the log is synced), against an LMDB write transaction with sync,
 *     and SQLite in WAL mode with synchronous=FULL. Medians.
 *  3. Enumerating the 10,000 values of one key merged from 16 layers,
 *     against an LMDB cursor over the same 10,000 entries. Target: within
 *     2x.
 *
 * Usage: bench-kv [N]. Scratch data goes under $BENCH_DIR (default
 * /var/tmp) and is removed. The last line is one JSON object.
 */
#include <inttypes.h>
#include <lmdb.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lamina.h>

#include "bench-common.h"

#define KEYS	    1000
#define TXN_RUNS    200
#define ENUM_VALUES 10000
#define ENUM_LAYERS 16
#define ENUM_RUNS   50

static char *scratch;
static size_t nvalues = 1000000;

static void cleanup(void)
{
	if (scratch) {
		bench_rm_rf(scratch);
		free(scratch);
		scratch = NULL;
	}
}

static void lam_die(const char *what, int code)
{
	bench_die("%s: %s (%d): %s", what, lam_strerror(code), code,
		  lam_error_last()->message);
}

#define LAM(expr)                            \
	do {                                 \
		int rc_ = (expr);            \
		if (rc_ != 0)                \
			lam_die(#expr, rc_); \
	} while (0)

#define MDB(expr)                                                      \
	do {                                                           \
		int rc_ = (expr);                                      \
		if (rc_ != 0)                                          \
			bench_die("%s: %s", #expr, mdb_strerror(rc_)); \
	} while (0)

static void key_path(char *out, size_t i)
{
	snprintf(out, 32, "Bench\\k%04zu", i % KEYS);
}

static void value_name(char *out, size_t i)
{
	snprintf(out, 32, "v%06zu", i / KEYS);
}

static void value_data(unsigned char out[16], size_t i)
{
	for (int b = 0; b < 16; b++)
		out[b] = (unsigned char)(i * 31 + (size_t)b);
}

/* Build a chain of @layers layers holding the N values, layer j the values
 * with i % layers == j. Returns the top layer. */
static lam_layer *build_chain(lam_store *s, size_t layers, double *secs)
{
	lam_kv_options o = LAM_KV_OPTIONS_INIT;
	lam_view *v;
	lam_layer *top = NULL;
	double t0 = bench_now();

	o.flags = LAM_KV_NOSYNC;
	LAM(lam_view_create(&v, s, NULL, NULL));
	LAM(lam_kv_configure(v, &o));
	for (size_t j = 0; j < layers; j++) {
		LAM(lam_kv_txn_begin(v));
		for (size_t i = j; i < nvalues; i += layers) {
			char path[32], name[32];
			unsigned char data[16];
			key_path(path, i);
			value_name(name, i);
			value_data(data, i);
			LAM(lam_kv_set_value(v, path, name, LAM_KV_BINARY, data,
					     16));
		}
		LAM(lam_kv_txn_commit(v));
		lam_layer_free(top);
		LAM(lam_view_commit(v, &top, NULL));
	}
	char id[37];
	snprintf(id, sizeof(id), "%s", lam_view_id(v));
	lam_view_free(v);
	LAM(lam_view_remove(s, id));
	*secs = bench_now() - t0;
	return top;
}

/* A random permutation of 0..n-1. */
static size_t *shuffled(size_t n, uint64_t seed)
{
	bench_rng r = {seed};
	size_t *p = malloc(n * sizeof(*p));
	if (p == NULL)
		bench_die("out of memory");
	for (size_t i = 0; i < n; i++)
		p[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = bench_rng_next(&r) % i;
		size_t t = p[i - 1];
		p[i - 1] = p[j];
		p[j] = t;
	}
	return p;
}

typedef struct get_result {
	double open_s;	  /* view over the chain, first key opened */
	double path_ns;	  /* per get, by path */
	double handle_ns; /* per get, through key handles */
} get_result;

static get_result time_gets(lam_store *s, lam_layer *top, const size_t *order)
{
	get_result res;
	lam_view_options ro = LAM_VIEW_OPTIONS_INIT;
	lam_view *v;
	lam_key **keys = calloc(KEYS, sizeof(*keys));
	unsigned char buf[16];
	size_t need;
	uint32_t type;

	ro.flags = LAM_VIEW_READONLY;
	double t0 = bench_now();
	LAM(lam_view_create(&v, s, top, &ro));
	LAM(lam_key_open(&keys[0], v, "Bench\\k0000", 0));
	res.open_s = bench_now() - t0;
	for (size_t k = 1; k < KEYS; k++) {
		char path[32];
		key_path(path, k);
		LAM(lam_key_open(&keys[k], v, path, 0));
	}

	t0 = bench_now();
	for (size_t n = 0; n < nvalues; n++) {
		size_t i = order[n];
		char path[32], name[32];
		key_path(path, i);
		value_name(name, i);
		LAM(lam_kv_get_value(v, path, name, &type, buf, sizeof(buf),
				     &need));
		if (buf[0] != (unsigned char)(i * 31))
			bench_die("wrong value for %zu", i);
	}
	res.path_ns = (bench_now() - t0) * 1e9 / (double)nvalues;

	t0 = bench_now();
	for (size_t n = 0; n < nvalues; n++) {
		size_t i = order[n];
		char name[32];
		value_name(name, i);
		LAM(lam_key_get_value(keys[i % KEYS], name, &type, buf,
				      sizeof(buf), &need));
		if (buf[0] != (unsigned char)(i * 31))
			bench_die("wrong value for %zu", i);
	}
	res.handle_ns = (bench_now() - t0) * 1e9 / (double)nvalues;
	for (size_t k = 0; k < KEYS; k++)
		lam_key_free(keys[k]);
	free(keys);
	lam_view_free(v);
	return res;
}

static MDB_env *lmdb_open(const char *dir, size_t map)
{
	MDB_env *env;
	mkdir(dir, 0755);
	MDB(mdb_env_create(&env));
	MDB(mdb_env_set_mapsize(env, map));
	MDB(mdb_env_open(env, dir, 0, 0644));
	return env;
}

static void lmdb_key(char *out, size_t i)
{
	char path[32], name[32];
	key_path(path, i);
	value_name(name, i);
	snprintf(out, 64, "%s\\%s", path, name);
}

static double lmdb_gets(const char *dir, const size_t *order, double *load_s)
{
	MDB_env *env = lmdb_open(dir, (size_t)4 << 30);
	MDB_txn *txn;
	MDB_dbi dbi;
	double t0 = bench_now();

	MDB(mdb_txn_begin(env, NULL, 0, &txn));
	MDB(mdb_dbi_open(txn, NULL, 0, &dbi));
	for (size_t i = 0; i < nvalues; i++) {
		char k[64];
		unsigned char data[16];
		lmdb_key(k, i);
		value_data(data, i);
		MDB_val key = {strlen(k), k}, val = {16, data};
		MDB(mdb_put(txn, dbi, &key, &val, 0));
	}
	MDB(mdb_txn_commit(txn));
	*load_s = bench_now() - t0;

	MDB(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
	t0 = bench_now();
	for (size_t n = 0; n < nvalues; n++) {
		size_t i = order[n];
		char k[64];
		lmdb_key(k, i);
		MDB_val key = {strlen(k), k}, val;
		MDB(mdb_get(txn, dbi, &key, &val));
		if (((unsigned char *)val.mv_data)[0] !=
		    (unsigned char)(i * 31))
			bench_die("lmdb: wrong value");
	}
	double ns = (bench_now() - t0) * 1e9 / (double)nvalues;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return ns;
}

/* --- durable commits of 10 writes --- */

static double lamina_txn(lam_store *s)
{
	lam_view *v;
	lam_key *k;
	double t[TXN_RUNS];

	LAM(lam_view_create(&v, s, NULL, NULL));
	LAM(lam_key_create(&k, v, "Txn", 0, NULL));
	for (int r = 0; r < TXN_RUNS; r++) {
		double t0 = bench_now();
		LAM(lam_kv_txn_begin(v));
		for (int w = 0; w < 10; w++) {
			char name[16];
			snprintf(name, sizeof(name), "w%d", w);
			LAM(lam_key_set_dword(k, name, (uint32_t)(r * 10 + w)));
		}
		LAM(lam_kv_txn_commit(v));
		t[r] = bench_now() - t0;
	}
	lam_key_free(k);
	char id[37];
	snprintf(id, sizeof(id), "%s", lam_view_id(v));
	lam_view_free(v);
	LAM(lam_view_remove(s, id));
	return bench_median(t, TXN_RUNS) * 1e6;
}

static double lmdb_txn(const char *dir)
{
	MDB_env *env = lmdb_open(dir, (size_t)64 << 20);
	MDB_txn *txn;
	MDB_dbi dbi;
	double t[TXN_RUNS];

	for (int r = 0; r < TXN_RUNS; r++) {
		double t0 = bench_now();
		MDB(mdb_txn_begin(env, NULL, 0, &txn));
		MDB(mdb_dbi_open(txn, NULL, 0, &dbi));
		for (int w = 0; w < 10; w++) {
			char k[16];
			uint32_t d = (uint32_t)(r * 10 + w);
			snprintf(k, sizeof(k), "Txn\\w%d", w);
			MDB_val key = {strlen(k), k}, val = {4, &d};
			MDB(mdb_put(txn, dbi, &key, &val, 0));
		}
		MDB(mdb_txn_commit(txn));
		t[r] = bench_now() - t0;
	}
	mdb_env_close(env);
	return bench_median(t, TXN_RUNS) * 1e6;
}

static double sqlite_txn(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	double t[TXN_RUNS];

	if (sqlite3_open(path, &db) != SQLITE_OK)
		bench_die("sqlite: %s", sqlite3_errmsg(db));
	sqlite3_exec(db,
		     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
		     "CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB);",
		     NULL, NULL, NULL);
	sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv VALUES(?, ?)", -1,
			   &st, NULL);
	for (int r = 0; r < TXN_RUNS; r++) {
		double t0 = bench_now();
		sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		for (int w = 0; w < 10; w++) {
			char k[16];
			uint32_t d = (uint32_t)(r * 10 + w);
			snprintf(k, sizeof(k), "Txn\\w%d", w);
			sqlite3_bind_text(st, 1, k, -1, SQLITE_TRANSIENT);
			sqlite3_bind_blob(st, 2, &d, 4, SQLITE_TRANSIENT);
			if (sqlite3_step(st) != SQLITE_DONE)
				bench_die("sqlite: %s", sqlite3_errmsg(db));
			sqlite3_reset(st);
		}
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			bench_die("sqlite: %s", sqlite3_errmsg(db));
		t[r] = bench_now() - t0;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return bench_median(t, TXN_RUNS) * 1e6;
}

/* --- enumeration of one key's values merged from 16 layers --- */

static double lamina_enum(lam_store *s, double *first_us)
{
	lam_kv_options o = LAM_KV_OPTIONS_INIT;
	lam_view *v;
	lam_layer *top = NULL;
	double t[ENUM_RUNS];

	o.flags = LAM_KV_NOSYNC;
	LAM(lam_view_create(&v, s, NULL, NULL));
	LAM(lam_kv_configure(v, &o));
	for (int j = 0; j < ENUM_LAYERS; j++) {
		LAM(lam_kv_txn_begin(v));
		for (int i = j; i < ENUM_VALUES; i += ENUM_LAYERS) {
			char name[16];
			uint32_t d = (uint32_t)i;
			snprintf(name, sizeof(name), "e%05d", i);
			LAM(lam_kv_set_value(v, "Enum", name, LAM_KV_DWORD, &d,
					     4));
		}
		LAM(lam_kv_txn_commit(v));
		lam_layer_free(top);
		LAM(lam_view_commit(v, &top, NULL));
	}
	char id[37];
	snprintf(id, sizeof(id), "%s", lam_view_id(v));
	lam_view_free(v);
	LAM(lam_view_remove(s, id));

	lam_key *k;
	LAM(lam_key_open_layer(&k, top, "Enum"));
	for (int r = 0; r < ENUM_RUNS; r++) {
		lam_key_value_iter *it;
		lam_kv_value val;
		uint64_t sum = 0;
		size_t n = 0;
		int rc;
		double t0 = bench_now();
		LAM(lam_key_value_iter_new(&it, k));
		while ((rc = lam_key_value_iter_next(it, &val)) == 0) {
			sum += ((const unsigned char *)val.data)[0] +
			       (unsigned char)val.name[1];
			n++;
		}
		lam_key_value_iter_free(it);
		t[r] = bench_now() - t0;
		if (rc != LAM_ITEROVER || n != ENUM_VALUES || sum == 0)
			bench_die("enumeration saw %zu values", n);
	}
	*first_us = t[0] * 1e6;
	lam_key_free(k);
	lam_layer_free(top);
	return bench_median(t, ENUM_RUNS) * 1e6;
}

static double lmdb_enum(const char *dir)
{
	MDB_env *env = lmdb_open(dir, (size_t)64 << 20);
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	double t[ENUM_RUNS];

	MDB(mdb_txn_begin(env, NULL, 0, &txn));
	MDB(mdb_dbi_open(txn, NULL, 0, &dbi));
	/* Neighbours on both sides, as a real database has. */
	for (int i = 0; i < ENUM_VALUES; i++) {
		char k[32];
		uint32_t d = (uint32_t)i;
		MDB_val key, val = {4, &d};
		snprintf(k, sizeof(k), "Enum\\e%05d", i);
		key = (MDB_val){strlen(k), k};
		MDB(mdb_put(txn, dbi, &key, &val, 0));
		snprintf(k, sizeof(k), "Aaaa\\e%05d", i);
		key = (MDB_val){strlen(k), k};
		MDB(mdb_put(txn, dbi, &key, &val, 0));
		snprintf(k, sizeof(k), "Zzzz\\e%05d", i);
		key = (MDB_val){strlen(k), k};
		MDB(mdb_put(txn, dbi, &key, &val, 0));
	}
	MDB(mdb_txn_commit(txn));
	MDB(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
	for (int r = 0; r < ENUM_RUNS; r++) {
		uint64_t sum = 0;
		size_t n = 0;
		double t0 = bench_now();
		MDB(mdb_cursor_open(txn, dbi, &cur));
		MDB_val key = {5, "Enum\\"}, val;
		int rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		while (rc == 0 && key.mv_size > 5 &&
		       memcmp(key.mv_data, "Enum\\", 5) == 0) {
			sum += ((const unsigned char *)val.mv_data)[0] +
			       ((const unsigned char *)key.mv_data)[6];
			n++;
			rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
		}
		mdb_cursor_close(cur);
		t[r] = bench_now() - t0;
		if (n != ENUM_VALUES || sum == 0)
			bench_die("lmdb enumeration saw %zu", n);
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return bench_median(t, ENUM_RUNS) * 1e6;
}

int main(int argc, char **argv)
{
	static const size_t depths[] = {1, 16, 64, 500};
	get_result gets[4];
	double build_s[4];
	lam_store *s;
	lam_store_options so = LAM_STORE_OPTIONS_INIT;
	char path[4200];

	if (argc > 1)
		nvalues = strtoul(argv[1], NULL, 10);
	if (nvalues < KEYS)
		nvalues = KEYS;
	scratch = bench_scratch_dir("bench-kv");
	if (scratch == NULL)
		return 1;
	atexit(cleanup);
	snprintf(path, sizeof(path), "%s/store", scratch);
	so.flags = LAM_STORE_CREATE;
	LAM(lam_store_open(&s, path, &so));
	printf("load average %.2f\n", bench_loadavg());

	size_t *order = shuffled(nvalues, 42);
	double lmdb_load;
	snprintf(path, sizeof(path), "%s/lmdb-get", scratch);
	double lmdb_get = lmdb_gets(path, order, &lmdb_load);
	printf("random get of %zu values: LMDB %.0f ns (loaded in %.1f s)\n",
	       nvalues, lmdb_get, lmdb_load);
	for (size_t d = 0; d < 4; d++) {
		lam_layer *top = build_chain(s, depths[d], &build_s[d]);
		gets[d] = time_gets(s, top, order);
		printf("  lamina through %3zu layers: %.0f ns by path, %.0f ns "
		       "by key handle; chain opened in %.0f ms (built in %.1f "
		       "s)\n",
		       depths[d], gets[d].path_ns, gets[d].handle_ns,
		       gets[d].open_s * 1e3, build_s[d]);
		lam_layer_free(top);
	}
	free(order);

	double lam_txn = lamina_txn(s);
	snprintf(path, sizeof(path), "%s/lmdb-txn", scratch);
	double mdb_txn = lmdb_txn(path);
	snprintf(path, sizeof(path), "%s/sqlite.db", scratch);
	double sql_txn = sqlite_txn(path);
	printf("durable commit of 10 writes (median of %d): lamina %.0f us, "
	       "LMDB %.0f us, SQLite WAL FULL %.0f us\n",
	       TXN_RUNS, lam_txn, mdb_txn, sql_txn);

	double first;
	double lam_enum = lamina_enum(s, &first);
	snprintf(path, sizeof(path), "%s/lmdb-enum", scratch);
	double mdb_enum = lmdb_enum(path);
	printf("enumerate %d values of one key from %d layers: lamina %.0f us "
	       "(first, with the merge: %.0f us), LMDB cursor %.0f us: %.2fx\n",
	       ENUM_VALUES, ENUM_LAYERS, lam_enum, first, mdb_enum,
	       lam_enum / mdb_enum);
	lam_store_free(s);

	printf("{\"values\":%zu,\"lmdb_get_ns\":%.1f", nvalues, lmdb_get);
	for (size_t d = 0; d < 4; d++)
		printf(",\"get_%zu_layers_ns\":%.1f,\"get_%zu_layers_handle_ns\""
		       ":%.1f,\"open_%zu_layers_ms\":%.1f",
		       depths[d], gets[d].path_ns, depths[d], gets[d].handle_ns,
		       depths[d], gets[d].open_s * 1e3);
	printf(",\"get_64_vs_lmdb\":%.2f,\"txn10_lamina_us\":%.0f,"
	       "\"txn10_lmdb_us\":%.0f,\"txn10_sqlite_us\":%.0f,"
	       "\"enum10k_16_layers_us\":%.0f,\"enum10k_lmdb_us\":%.0f,"
	       "\"enum_ratio\":%.2f}\n",
	       gets[2].handle_ns / lmdb_get, lam_txn, mdb_txn, sql_txn,
	       lam_enum, mdb_enum, lam_enum / mdb_enum);
	return 0;
}
