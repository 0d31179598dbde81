// SPDX-License-Identifier: MIT
/*
 * The registry: one small shared file per user and network namespace,
 * which tells clients which ports have a usmc listener and counts the
 * Proposals sent toward each (see usmc_core.h), and the Unix names of
 * the listeners' channels.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "usmc_core.h"
#include "usmc_registry.h"
#include "usmc_shared_file.h"
#include "usmc_sys.h"

#define REG_PORTS 65536

static struct reg_port *reg_map;
static uid_t reg_uid;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static _Atomic bool reg_done;

unsigned long usmc_netns_inode(void)
{
	struct stat st;

	return stat("/proc/self/ns/net", &st) == 0 ? (unsigned long)st.st_ino : 0;
}

static void reg_open(void)
{
	const char *dir = getenv("USMC_REGISTRY_DIR");
	char path[256];

	snprintf(path, sizeof(path), "%s/usmc-%u-%lu.4", dir ? dir : "/dev/shm", (unsigned)getuid(),
		 usmc_netns_inode());
	reg_map = usmc_shared_file_map(path, REG_PORTS * sizeof(struct reg_port));
	reg_uid = getuid();
}

uid_t reg_owner(void)
{
	usmc_once(&reg_once, &reg_done, reg_open);
	return reg_uid;
}

struct reg_port *reg_port(uint16_t port)
{
	usmc_once(&reg_once, &reg_done, reg_open);
	return reg_map ? &reg_map[port] : NULL;
}

/* An abstract Unix name, usmc/<uid>/<port> and what follows. */
__attribute__((format(printf, 2, 3))) static socklen_t reg_name(void *addr, const char *fmt, ...)
{
	struct sockaddr_un *sun = addr;
	va_list ap;
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	va_start(ap, fmt);
	n = vsnprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1, fmt, ap);
	va_end(ap);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

socklen_t reg_listener_addr(uid_t uid, uint16_t port, bool other_users, void *addr)
{
	/* Abstract: it vanishes with the process, so no entry outlives it. */
	return reg_name(addr, "usmc/%u/%u%s", (unsigned)uid, (unsigned)port,
			other_users ? "/users" : "");
}

socklen_t reg_member_addr(uid_t uid, uint16_t port, int32_t pid, void *addr)
{
	return reg_name(addr, "usmc/%u/%u/m%d", (unsigned)uid, (unsigned)port, (int)pid);
}

