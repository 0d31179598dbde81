/* SPDX-License-Identifier: MIT */
/*
 * The policy file's syntax, read in one place for the library, usmc-run
 * --check-policy and usmc-kernel policy set.
 *
 * A statement is a rule ("smc|tcp ADDR[/PREFIX][:PORT[-PORT]]") or an
 * allow-user line.  Statements end at a newline or a ';'; '#' starts a
 * comment that runs to the end of its line, ';' included.  Lines and files
 * may be of any length and hold any number of statements.
 */
#ifndef USMC_POLICY_FILE_H
#define USMC_POLICY_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "usmc_policy.h"

/* Called for each statement, trimmed, with its line number; nonzero stops. */
typedef int (*usmc_stmt_fn)(void *arg, int line, char *stmt);

/* Walks text[0..len) (NUL bytes end nothing); returns what fn stopped with, or 0. */
int usmc_policy_each(const char *text, size_t len, usmc_stmt_fn fn, void *arg);

/*
 * The whole of a file (path "-": standard input), NUL-terminated, in
 * malloc'd memory; NULL with errno set if it cannot be read.
 */
char *usmc_policy_read(const char *path, size_t *len);

/* If stmt is "allow-user WORD...", points *words at the words and returns true. */
bool usmc_policy_allow_line(char *stmt, char **words);

/* A user name or a uid; false if neither. */
bool usmc_policy_user(const char *word, uid_t *uid);

/* The parsed statements of a text; errors counted, each told to warn (if not NULL). */
struct usmc_policy {
	struct usmc_rule *rules;
	int nrules;
	uid_t *users;
	int nusers;
	int errors;
};

typedef void (*usmc_policy_warn_fn)(void *arg, int line, const char *what, const char *stmt);
/* 0, or -1 with errno ENOMEM; p is filled either way and freed with usmc_policy_free. */
int usmc_policy_parse(struct usmc_policy *p, const char *text, size_t len,
		      usmc_policy_warn_fn warn, void *arg);
void usmc_policy_free(struct usmc_policy *p);

#endif /* USMC_POLICY_FILE_H */
