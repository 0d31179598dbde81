// SPDX-License-Identifier: MIT
/*
 * usmc_policy_file.c - the policy file's statements.
 *
 * Everything here takes text of any size: a rule cut at some buffer's
 * length would have its tail read as a rule of its own, and a table with
 * a fixed number of places would drop the rules after it without a word.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "usmc_policy_file.h"
#include "usmc_sys.h"

#define POLICY_FILE_MAX (64u << 20) /* past this, a file is not a policy */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

int usmc_policy_each(const char *text, size_t len, usmc_stmt_fn fn, void *arg)
{
	size_t pos = 0, cap = 0;
	char *stmt = NULL;
	int line = 1, rc = 0;

	while (pos < len && rc == 0) {
		size_t end = pos, n = 0;
		bool comment = false;

		/* One statement: up to ';' or a newline, a comment skipped whole. */
		while (end < len && text[end] != '\n' && (comment || text[end] != ';')) {
			if (text[end] == '#')
				comment = true;
			if (!comment)
				n++;
			end++;
		}
		if (n + 1 > cap) {
			char *bigger = realloc(stmt, n + 1);

			if (!bigger) {
				rc = -1;
				errno = ENOMEM;
				break;
			}
			stmt = bigger, cap = n + 1;
		}
		memcpy(stmt, text + pos, n);
		stmt[n] = 0;
		{
			char *s = stmt, *e = stmt + n;

			while (is_blank(*s))
				s++;
			while (e > s && is_blank(e[-1]))
				*--e = 0;
			if (*s)
				rc = fn(arg, line, s);
		}
		if (end < len && text[end] == '\n')
			line++;
		pos = end + 1;
	}
	free(stmt);
	return rc;
}

char *usmc_policy_read(const char *path, size_t *len)
{
	int fd = strcmp(path, "-") ? usmc_sys.open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	size_t cap = 4096, n = 0;
	char *buf;

	if (fd < 0)
		return NULL;
	buf = malloc(cap);
	while (buf) {
		ssize_t got;

		if (n + 1 == cap) {
			char *bigger = cap >= POLICY_FILE_MAX ? NULL : realloc(buf, cap * 2);

			if (!bigger) {
				free(buf);
				buf = NULL;
				errno = cap >= POLICY_FILE_MAX ? EFBIG : ENOMEM;
				break;
			}
			buf = bigger, cap *= 2;
		}
		got = usmc_sys.read(fd, buf + n, cap - n - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int err = errno;

			free(buf);
			buf = NULL;
			errno = err;
			break;
		}
		if (got == 0) {
			buf[n] = 0;
			*len = n;
			break;
		}
		n += (size_t)got;
	}
	if (fd != STDIN_FILENO) {
		int err = errno;

		usmc_sys.close(fd);
		errno = err;
	}
	return buf;
}

bool usmc_policy_allow_line(char *stmt, char **words)
{
	static const char keyword[] = "allow-user";
	size_t k = sizeof(keyword) - 1;

	if (strncmp(stmt, keyword, k) || (stmt[k] && !is_blank(stmt[k])))
		return false;
	*words = stmt + k;
	return true;
}

bool usmc_policy_user(const char *word, uid_t *uid)
{
	struct passwd pw, *found = NULL;
	char buf[1024], *end;
	unsigned long n;

	if (isdigit((unsigned char)*word)) {
		errno = 0;
		n = strtoul(word, &end, 10);
		if (*end || errno || n >= (uid_t)-1)
			return false;
		*uid = (uid_t)n;
		return true;
	}
	if (getpwnam_r(word, &pw, buf, sizeof(buf), &found) || !found)
		return false;
	*uid = found->pw_uid;
	return true;
}

struct parse_state {
	struct usmc_policy *p;
	int rules_cap, users_cap;
	usmc_policy_warn_fn warn;
	void *arg;
};

/* Grows an array of n elements to hold one more; false without memory. */
static bool grow(void **array, int n, int *cap, size_t size)
{
	void *bigger;
	int want;

	if (n < *cap)
		return true;
	want = *cap ? *cap * 2 : 16;
	bigger = realloc(*array, (size_t)want * size);
	if (!bigger)
		return false;
	*array = bigger, *cap = want;
	return true;
}

static void complain(struct parse_state *st, int line, const char *what, const char *stmt)
{
	st->p->errors++;
	if (st->warn)
		st->warn(st->arg, line, what, stmt);
}

static int take_users(struct parse_state *st, int line, char *words)
{
	struct usmc_policy *p = st->p;
	char *word, *save = NULL;
	int any = 0;

	for (word = strtok_r(words, " \t,", &save); word; word = strtok_r(NULL, " \t,", &save)) {
		uid_t uid;

		any = 1;
		if (!usmc_policy_user(word, &uid)) {
			complain(st, line, "unknown user", word);
			continue;
		}
		if (!grow((void **)&p->users, p->nusers, &st->users_cap, sizeof(uid_t)))
			return -1;
		p->users[p->nusers++] = uid;
	}
	if (!any)
		complain(st, line, "allow-user names no user", "allow-user");
	return 0;
}

static int take_stmt(void *arg, int line, char *stmt)
{
	struct parse_state *st = arg;
	struct usmc_policy *p = st->p;
	char *words;

	if (usmc_policy_allow_line(stmt, &words))
		return take_users(st, line, words);
	if (!grow((void **)&p->rules, p->nrules, &st->rules_cap, sizeof(struct usmc_rule)))
		return -1;
	if (usmc_rule_parse(&p->rules[p->nrules], stmt))
		p->nrules++;
	else
		complain(st, line, "not a rule (smc|tcp ADDR[/PREFIX][:PORT[-PORT]])", stmt);
	return 0;
}

int usmc_policy_parse(struct usmc_policy *p, const char *text, size_t len,
		      usmc_policy_warn_fn warn, void *arg)
{
	struct parse_state st = { .p = p, .warn = warn, .arg = arg };

	memset(p, 0, sizeof(*p));
	if (usmc_policy_each(text, len, take_stmt, &st)) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

void usmc_policy_free(struct usmc_policy *p)
{
	free(p->rules);
	free(p->users);
	memset(p, 0, sizeof(*p));
}
