/* SPDX-License-Identifier: MIT */
/*
 * The names the preload takes over, with the table of real calls
 * (USMC_SYS_CALLS, src/lib/usmc_sys.h) in one list: the version script
 * that says what libusmc-preload.so exports is made from them when it is
 * built (usmc_preload_map.in, tools/preload_map.cmake), and preload_cli
 * checks that what it exports is that, no more, no less.  So a call is
 * taken over by adding it to the table (the library then reaches the real
 * one through usmc_sys) and writing its wrapper; a wrapper without its
 * name here is never seen by a program, a name without its wrapper fails
 * preload_cli.
 *
 * Exported: every call of the table but USMC_SYS_OWN, and
 * USMC_PRELOAD_MORE.
 */
#ifndef USMC_PRELOAD_NAMES_H
#define USMC_PRELOAD_NAMES_H

/* Calls of the table that usmc makes but does not take over. */
#define USMC_SYS_OWN(N) N(getsockname) N(socketpair)

/*
 * Names taken over that usmc never calls itself, so the table has no
 * entry for them: libc's aliases and fortified forms, which end in the
 * table's calls; the exec family and the spawners, which hand
 * connections over; stdio on sockets; liburing's setup; sockatmark,
 * which is libc's ioctl; open()'s fortified forms.
 */
#define USMC_PRELOAD_MORE(N)                                                                  \
	N(__read) N(__write) N(__send) N(__connect) N(__close) N(__dup2) N(__fcntl) N(__poll)  \
	N(__select) N(__read_chk) N(__recv_chk) N(__recvfrom_chk) N(__poll_chk)               \
	N(__ppoll_chk)                                                                        \
	N(execve) N(execv) N(execvp) N(execvpe) N(execl) N(execlp) N(execle) N(fexecve)       \
	N(execveat) N(posix_spawn) N(posix_spawnp) N(system) N(popen) N(__vfork) N(__clone)   \
	N(fdopen) N(_IO_fdopen) N(dprintf) N(vdprintf) N(__dprintf_chk) N(__vdprintf_chk)     \
	N(freopen) N(freopen64) N(sockatmark)                                                 \
	N(io_uring_setup) N(io_uring_queue_init) N(io_uring_queue_init_params)                \
	N(io_uring_queue_init_mem) N(__open_2) N(__open64_2) N(__openat_2) N(__openat64_2)

#endif /* USMC_PRELOAD_NAMES_H */
