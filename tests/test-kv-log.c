/* SPDX-License-Identifier: MIT */
/* The key/value log: replay, torn tails, damage, transactions that a crash
 * keeps whole or drops whole, and the log across a commit. */
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kv/kvtest.h"

static lam_view *view;
static char view_id[37];

static void setup(void)
{
	lt_setup();
	view = kt_view(NULL);
	snprintf(view_id, sizeof(view_id), "%s", lam_view_id(view));
}

static void teardown(void)
{
	kt_view_free(view);
	view = NULL;
	lt_teardown();
}

static const char *log_path(void)
{
	return lt_path("store/views/%s/kv.log", view_id);
}

static off_t log_size(void)
{
	struct stat st;
	ck_assert_int_eq(stat(log_path(), &st), 0);
	return st.st_size;
}

static void write_log(const char *data, size_t len)
{
	lt_write_bytes(log_path(), data, len);
}

static lam_view *open_view(void)
{
	lam_view *v;
	LT_OK(lam_view_open(&v, lt_store, view_id, NULL));
	return v;
}

/* Everything the view shows, as .reg text (malloc'd). */
static char *dump(lam_view *v)
{
	lam_key *k;
	char *text, *copy;
	LT_OK(lam_key_open(&k, v, "", 0));
	LT_OK(lam_key_export_reg(&text, NULL, k, NULL));
	lam_key_free(k);
	copy = strdup(text);
	lam_free(text);
	return copy;
}

START_TEST(test_torn_tail_is_dropped_at_every_offset)
{
	kt_set_sz(view, "A", "one", "1");
	kt_set_dword(view, "A\\B", "two", 2);
	lam_key *k;
	LT_OK(lam_key_open(&k, view, "A", 0));
	LT_OK(lam_key_delete_value(k, "one"));
	lam_key_free(k);
	char *before = dump(view);
	off_t start = log_size();
	/* The last unit: a transaction of three changes. */
	LT_OK(lam_kv_txn_begin(view));
	kt_set_sz(view, "A", "three", "3");
	kt_set_sz(view, "C", "four", "4");
	LT_OK(lam_key_delete(view, "A\\B", LAM_KEY_TREE));
	LT_OK(lam_kv_txn_commit(view));
	char *after = dump(view);
	kt_view_free(view);
	view = NULL;

	size_t len;
	char *full = lt_read(log_path(), &len);
	ck_assert_int_gt((off_t)len, start);
	for (size_t cut = (size_t)start; cut < len; cut++) {
		write_log(full, cut);
		lam_view *v = open_view();
		char *got = dump(v);
		ck_assert_msg(strcmp(got, before) == 0,
			      "cut at %zu of %zu: the torn unit shows:\n%s",
			      cut, len, got);
		free(got);
		kt_view_free(v);
		/* The writer cut the log back to the last whole unit. */
		ck_assert_int_eq(log_size(), start);
	}
	/* Zeros after the last unit, as a crash may leave them, are a torn
	 * tail too. */
	char *zeros = calloc(1, len + 512);
	memcpy(zeros, full, (size_t)start);
	write_log(zeros, len + 512);
	free(zeros);
	lam_view *v = open_view();
	char *got = dump(v);
	ck_assert_str_eq(got, before);
	free(got);
	kt_view_free(v);

	write_log(full, len);
	v = open_view();
	got = dump(v);
	ck_assert_str_eq(got, after);
	free(got);
	kt_view_free(v);
	free(full);
	free(before);
	free(after);
}
END_TEST

START_TEST(test_damaged_log_is_refused_and_kept)
{
	kt_set_sz(view, "A", "one", "1");
	off_t mid = log_size();
	kt_set_sz(view, "A", "two", "2");
	kt_set_sz(view, "A", "three", "3");
	kt_view_free(view);
	view = NULL;

	size_t len;
	char *full = lt_read(log_path(), &len);
	char *bad = malloc(len);
	memcpy(bad, full, len);
	bad[mid + 20] ^= 0x01; /* inside the second record */
	write_log(bad, len);
	lam_view *v = open_view();
	lam_key *k;
	char want[64];
	snprintf(want, sizeof(want), "kv.log: damaged record at offset %ld",
		 (long)mid);
	LT_FAILS(lam_key_open(&k, v, "A", 0), LAM_ECORRUPT, want);
	kt_view_free(v);
	/* Nothing was cut away. */
	size_t len2;
	char *now = lt_read(log_path(), &len2);
	ck_assert_uint_eq(len2, len);
	ck_assert(memcmp(now, bad, len) == 0);
	free(now);

	/* A damaged header is refused too. */
	memcpy(bad, full, len);
	bad[20] ^= 0x01;
	write_log(bad, len);
	v = open_view();
	LT_FAILS(lam_key_open(&k, v, "A", 0), LAM_ECORRUPT, "bad header");
	kt_view_free(v);
	write_log(full, 30);
	v = open_view();
	LT_FAILS(lam_key_open(&k, v, "A", 0), LAM_ECORRUPT, "truncated header");
	kt_view_free(v);

	/* Repaired, every change is there. */
	write_log(full, len);
	v = open_view();
	kt_assert_sz(v, "A", "one", "1");
	kt_assert_sz(v, "A", "three", "3");
	kt_view_free(v);
	free(bad);
	free(full);
}
END_TEST

START_TEST(test_log_of_a_former_base_is_dropped)
{
	kt_set_sz(view, "K", "v", "1");
	lam_key *k;
	LT_OK(lam_key_open(&k, view, "K", 0));
	LT_OK(lam_key_set_dword(k, "n", 1));
	lam_key_free(k);
	size_t len;
	char *old = lt_read(log_path(), &len);
	lam_layer *l = kt_commit(view);
	/* After the commit the log starts over, for the new base. */
	ck_assert_int_lt(log_size(), (off_t)len);
	kt_view_free(view);
	view = NULL;

	/* A crash after the view switched to the new base but before the
	 * log was replaced leaves the old log: it must not apply twice. */
	write_log(old, len);
	lam_view *v = open_view();
	kt_assert_sz(v, "K", "v", "1");
	/* The view goes on from the new base: a change and a commit work,
	 * and the old changes are in the layer once. */
	kt_set_sz(v, "K", "later", "2");
	lam_layer *l2 = kt_commit(v);
	lam_key *lk;
	LT_OK(lam_key_open_layer(&lk, l2, "K"));
	kt_assert_str(kt_values(lk), "later,n,v");
	lam_key_free(lk);
	lam_layer_free(l2);
	kt_view_free(v);
	free(old);
	lam_layer_free(l);
}
END_TEST

static int count_changes(lam_change_kind kind, const char *key,
			 const char *value, void *userdata)
{
	(void)kind;
	(void)key;
	(void)value;
	(*(int *)userdata)++;
	return 0;
}

START_TEST(test_former_base_log_leaves_no_changes)
{
	kt_set_sz(view, "K", "v", "1");
	size_t len;
	char *old = lt_read(log_path(), &len);
	lam_layer *l = kt_commit(view);
	kt_view_free(view);
	view = NULL;
	write_log(old, len);
	lam_view *v = open_view();
	int n = 0;
	LT_OK(lam_kv_view_diff(v, count_changes, &n));
	ck_assert_int_eq(n, 0);
	kt_assert_sz(v, "K", "v", "1");
	/* And the dropped log was replaced by an empty one. */
	ck_assert_int_lt(log_size(), (off_t)len);
	kt_view_free(v);
	free(old);
	lam_layer_free(l);
}
END_TEST

/* The child's work for the crash test: three single changes and a
 * transaction of five. */
static void crash_work(void)
{
	lam_view *v;
	if (lam_view_open(&v, lt_store, view_id, NULL) != 0)
		_exit(3);
	for (int i = 0; i < 3; i++) {
		char name[8];
		snprintf(name, sizeof(name), "s%d", i);
		if (lam_kv_set_value(v, "Crash", name, LAM_KV_SZ, "x", 2) != 0)
			_exit(4);
	}
	if (lam_kv_txn_begin(v) != 0)
		_exit(5);
	for (int i = 0; i < 5; i++) {
		char name[8];
		snprintf(name, sizeof(name), "t%d", i);
		if (lam_kv_set_value(v, "Crash", name, LAM_KV_SZ, "y", 2) != 0)
			_exit(6);
	}
	if (lam_kv_txn_commit(v) != 0)
		_exit(7);
	_exit(0);
}

START_TEST(test_crash_at_any_point_keeps_units_whole)
{
	kt_view_free(view);
	view = NULL;
	bool finished = false;
	for (uint64_t point = 1; !finished && point < 200; point++) {
		lam_view *v = open_view();
		LT_OK(lam__kv_reset(v));
		kt_view_free(v);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			lam__test_crash_at(point);
			crash_work();
		}
		int st;
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
		if (WIFEXITED(st)) {
			ck_assert_int_eq(WEXITSTATUS(st), 0);
			finished = true;
		} else {
			ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		}
		/* Whatever the crash point: single changes are in or out
		 * in order, and the transaction is all in or all out. */
		v = open_view();
		int singles = 0, txn = 0;
		bool gap = false;
		for (int i = 0; i < 3; i++) {
			char name[8];
			snprintf(name, sizeof(name), "s%d", i);
			char *s = kt_get_sz(v, "Crash", name);
			if (s && gap)
				ck_abort_msg("point %lu: s%d after a gap",
					     (unsigned long)point, i);
			if (!s)
				gap = true;
			singles += s != NULL;
			free(s);
		}
		for (int i = 0; i < 5; i++) {
			char name[8];
			snprintf(name, sizeof(name), "t%d", i);
			char *s = kt_get_sz(v, "Crash", name);
			txn += s != NULL;
			free(s);
		}
		ck_assert_msg(txn == 0 || txn == 5,
			      "point %lu: %d of the transaction's 5 changes",
			      (unsigned long)point, txn);
		ck_assert(txn == 0 || singles == 3);
		if (finished)
			ck_assert(singles == 3 && txn == 5);
		kt_view_free(v);
	}
	ck_assert(finished);
}
END_TEST

START_TEST(test_log_compacts_as_it_grows)
{
	lam_kv_options o = LAM_KV_OPTIONS_INIT;
	o.flags = LAM_KV_NOSYNC;
	LT_OK(lam_kv_configure(view, &o));
	char data[1000];
	memset(data, 'x', sizeof(data));
	lam_key *k = kt_create(view, "Grow");
	for (int i = 0; i < 3000; i++) {
		data[0] = (char)('a' + i % 26);
		LT_OK(lam_key_set_value(k, "same", LAM_KV_BINARY, data,
					sizeof(data)));
	}
	LT_OK(lam_kv_flush(view));
	lam_key_free(k);
	/* 3 MB were written; the log keeps about what it holds. */
	ck_assert_int_lt(log_size(), 1200 * 1024);
	view = kt_reopen(view);
	unsigned char got[1000];
	size_t need;
	LT_OK(lam_kv_get_value(view, "Grow", "same", NULL, got, sizeof(got),
			       &need));
	ck_assert_int_eq(got[0], 'a' + 2999 % 26);
}
END_TEST

START_TEST(test_replay_rebuilds_the_same_state)
{
	lam_view *lower = kt_view(NULL);
	kt_set_sz(lower, "L\\Deep", "v", "1");
	kt_set_sz(lower, "L", "w", "2");
	kt_set_sz(lower, "Gone\\X", "y", "3");
	lam_layer *base = kt_commit(lower);
	kt_view_free(lower);
	kt_view_free(view);
	view = kt_view(base);
	snprintf(view_id, sizeof(view_id), "%s", lam_view_id(view));

	lam_key *k;
	LT_OK(lam_key_delete(view, "Gone", LAM_KEY_TREE));
	LT_OK(lam_key_create(&k, view, "GONE\\New", 0, NULL));
	LT_OK(lam_key_set_qword(k, "q", 7));
	lam_key_free(k);
	LT_OK(lam_key_open(&k, view, "L", 0));
	LT_OK(lam_key_delete_value(k, "w"));
	LT_OK(lam_key_set_string(k, "s", LAM_KV_EXPAND_SZ, "%x%"));
	lam_key_free(k);
	kt_set_sz(view, "Only\\Upper", "u", "u");
	LT_OK(lam_key_delete(view, "Only", LAM_KEY_TREE));
	char *before = dump(view);
	view = kt_reopen(view);
	char *after = dump(view);
	ck_assert_str_eq(after, before);
	ck_assert(!kt_key_exists(view, "Gone\\X"));
	free(before);
	free(after);
	lam_layer_free(base);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kv-log");
	TCase *tc = tcase_create("kv-log");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_torn_tail_is_dropped_at_every_offset);
	tcase_add_test(tc, test_damaged_log_is_refused_and_kept);
	tcase_add_test(tc, test_log_of_a_former_base_is_dropped);
	tcase_add_test(tc, test_former_base_log_leaves_no_changes);
	tcase_add_test(tc, test_crash_at_any_point_keeps_units_whole);
	tcase_add_test(tc, test_log_compacts_as_it_grows);
	tcase_add_test(tc, test_replay_rebuilds_the_same_state);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
