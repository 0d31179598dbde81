// SPDX-License-Identifier: MIT
/*
 * Whether the program an exec starts will load this library and so take
 * over the shared-memory connections it inherits.  A static binary has no
 * dynamic loader to preload anything.  An exec the kernel runs in
 * secure-execution mode (AT_SECURE, security/commoncap.c) has a loader
 * that ignores LD_PRELOAD's entries with a slash, usmc-run's: the
 * caller's real and effective user or group differ (squid's master execs
 * its worker so), or the file is set-user-ID or set-group-ID to another
 * id than ours, or has file capabilities.  A script is judged by its
 * interpreter.  Such a program would read the doorbell bytes on the TCP
 * socket as data, so usmc ends those connections first
 * (usmc_exec_break_inherited): the program and the peer see errors,
 * never a stray byte.
 *
 * Anything that cannot be read here (no such file, no permission) is left
 * to the exec itself, which fails or not as it would have.
 */
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "usmc_preload.h"
#include "usmc_sys.h"

/* Whether an ELF file names a program interpreter (the dynamic loader). */
static bool elf_has_interp(int fd, const unsigned char *id)
{
	bool is64 = id[EI_CLASS] == ELFCLASS64;
	Elf64_Ehdr h64;
	Elf32_Ehdr h32;
	uint64_t phoff;
	unsigned phnum, phentsize;

	if (is64) {
		if (pread(fd, &h64, sizeof(h64), 0) != sizeof(h64))
			return true;
		phoff = h64.e_phoff, phnum = h64.e_phnum, phentsize = h64.e_phentsize;
	} else {
		if (pread(fd, &h32, sizeof(h32), 0) != sizeof(h32))
			return true;
		phoff = h32.e_phoff, phnum = h32.e_phnum, phentsize = h32.e_phentsize;
	}
	if (phentsize < (is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)) || phnum > 4096)
		return true; /* not ours to judge: the kernel will */
	for (unsigned i = 0; i < phnum; i++) {
		uint32_t type;

		if (pread(fd, &type, sizeof(type), (off_t)(phoff + (uint64_t)i * phentsize)) !=
		    sizeof(type))
			return true;
		if (type == PT_INTERP)
			return true;
	}
	return false;
}

static bool secure_mode(int fd)
{
	struct stat st;

	if (fstat(fd, &st))
		return false;
	if (((st.st_mode & S_ISUID) && st.st_uid != geteuid()) ||
	    ((st.st_mode & S_ISGID) && st.st_gid != getegid()))
		return true;
	return fgetxattr(fd, "security.capability", NULL, 0) > 0;
}

/* Whether the program at path loads this library; *secure when its exec is secure. */
static bool adopts(const char *path, int depth, bool *secure)
{
	unsigned char head[PATH_MAX < 256 ? PATH_MAX : 256];
	int fd = usmc_sys.open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	bool ok = true;

	if (fd < 0)
		return true;
	n = pread(fd, head, sizeof(head) - 1, 0);
	if (secure_mode(fd)) {
		*secure = true;
		ok = false;
	} else if (n >= SELFMAG && !memcmp(head, ELFMAG, SELFMAG)) {
		ok = n > EI_CLASS && elf_has_interp(fd, head);
	} else if (n > 2 && head[0] == '#' && head[1] == '!' && depth < 4) {
		char *p = (char *)head + 2, *end;

		head[n] = '\0';
		p += strspn(p, " \t");
		end = p + strcspn(p, " \t\n");
		*end = '\0';
		ok = !*p || adopts(p, depth + 1, secure);
	}
	usmc_sys.close(fd);
	return ok;
}

/* The file execvp would run: the first of PATH's directories that has it executable. */
static bool path_search(const char *file, char *out, size_t cap)
{
	const char *dirs = getenv("PATH");

	if (!dirs)
		dirs = "/bin:/usr/bin";
	while (*dirs) {
		size_t len = strcspn(dirs, ":");

		if ((size_t)snprintf(out, cap, "%.*s%s%s", (int)len, dirs, len ? "/" : "", file) <
			    cap &&
		    !access(out, X_OK))
			return true;
		dirs += len + (dirs[len] == ':');
	}
	return false;
}

/* The caller's real and effective user or group differ, as the exec will keep them. */
static bool ids_differ(bool ids_reset)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (ids_reset || getresuid(&ru, &eu, &su) || getresgid(&rg, &eg, &sg))
		return false;
	return ru != eu || rg != eg;
}

bool preload_target_adopts(const char *path, bool search, bool ids_reset, bool *secure)
{
	char found[PATH_MAX];

	*secure = ids_differ(ids_reset);
	if (*secure)
		return false;
	if (path && search && !strchr(path, '/')) {
		if (!path_search(path, found, sizeof(found)))
			return true;
		path = found;
	}
	return !path || adopts(path, 0, secure);
}
