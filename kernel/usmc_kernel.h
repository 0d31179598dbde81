/* SPDX-License-Identifier: MIT */
/*
 * Kernel SMC through eBPF: the loader of usmc_kernel.bpf.c.
 *
 * The BPF program makes the TCP sockets of the processes in scope kernel
 * SMC sockets (IPPROTO_SMC, Linux 6.11+).  It is either loaded for the
 * lifetime of one process (usmc-run --kernel), or pinned below
 * USMC_KPIN_DIR so that it stays attached after usmc-kernel exits.
 *
 * Functions that can fail return 0 or a handle on success; on failure -1
 * or NULL, with one line in why saying what is missing and what to do.
 */
#ifndef USMC_KERNEL_H
#define USMC_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define USMC_KPIN_DIR "/sys/fs/bpf/usmc"
#define USMC_KWHY_LEN 320	/* enough for any reason line */

enum usmc_kscope {
	USMC_KSCOPE_CGROUP,
	USMC_KSCOPE_PID,
	USMC_KSCOPE_NETNS,
	USMC_KSCOPE_COMM,
	USMC_KSCOPE_COUNT
};

/* One key of a scope map. */
struct usmc_kentry {
	enum usmc_kscope scope;
	uint64_t id;		/* cgroup id, process id or netns inode */
	uint64_t start_ticks;	/* process: its start time; 0 matches any */
	char comm[16];		/* command name, NUL padded */
};

/* What the caller is about to do; each asks more of the machine. */
enum {
	USMC_KNEED_ATTACH = 1 << 0,	/* load and attach the program */
	USMC_KNEED_PIN = 1 << 1,	/* keep it in bpffs */
	USMC_KNEED_CGROUP = 1 << 2,	/* scope by cgroup v2 */
};

struct usmc_kernel;

/* libbpf's messages: kept for usmc_kernel_log(), printed only if verbose. */
void usmc_kernel_verbose(int level);
const char *usmc_kernel_log(void);

/* Single checks, in the order usmc_kernel_check() runs them. */
int usmc_kernel_check_root(char *why, size_t len);
int usmc_kernel_check_btf(char *why, size_t len);
int usmc_kernel_check_smc(char *why, size_t len);
int usmc_kernel_check_hook(char *why, size_t len);
int usmc_kernel_check_attach(char *why, size_t len);	/* loads and detaches */
int usmc_kernel_check_bpffs(char *why, size_t len);
int usmc_kernel_check_cgroup2(char *why, size_t len);
/* The first thing of needs that the machine lacks. */
int usmc_kernel_check(unsigned int needs, char *why, size_t len);

/* Per-connection policy: the smc_hs_ctrl struct_ops of Linux 6.19+. */
bool usmc_kernel_policy_available(void);

/*
 * The policy's rule table (struct usmc_kprule, usmc_kernel_maps.h), kept
 * in the kernel by the struct_ops usmc_policy.bpf.c, pinned below
 * USMC_KPIN_DIR and selected through net.smc.hs_ctrl.
 */
struct usmc_kprule;
bool usmc_kpolicy_loaded(void);
/* The rules in use, up to max; 0 when no policy is loaded, -1 on failure. */
int usmc_kpolicy_get(struct usmc_kprule *rules, int max, char *why, size_t len);
/* Loads and registers the struct_ops if needed, writes the table, selects it. */
int usmc_kpolicy_set(const struct usmc_kprule *rules, int n, char *why, size_t len);
/* Unselects, unregisters and unpins it; 1 if there was none.  Not while
 * usmc_kernel_open_pinned()'s handle is held: both take the same lock. */
int usmc_kpolicy_clear(char *why, size_t len);
/* What net.smc.hs_ctrl names in this network namespace, "" for nothing. */
int usmc_kpolicy_selected(char *name, size_t size);
/* Connections the policy let try SMC, and those it kept to TCP. */
int usmc_kpolicy_stats(uint64_t *smc, uint64_t *tcp);

/* Loaded and attached until usmc_kernel_close(); nothing pinned. */
struct usmc_kernel *usmc_kernel_load(char *why, size_t len);
/* The pinned program; create loads and pins it when it is not there. */
struct usmc_kernel *usmc_kernel_open_pinned(bool create, char *why, size_t len);
bool usmc_kernel_pinned(void);
/* Detaches the pinned program and removes USMC_KPIN_DIR. */
int usmc_kernel_unpin(char *why, size_t len);
void usmc_kernel_close(struct usmc_kernel *k);

int usmc_kernel_add(struct usmc_kernel *k, const struct usmc_kentry *e, char *why, size_t len);
/* 1 if removed, 0 if it was not there. */
int usmc_kernel_del(struct usmc_kernel *k, const struct usmc_kentry *e, char *why, size_t len);
/* Calls fn for every entry of every scope map, stopping when it returns non-zero. */
int usmc_kernel_list(struct usmc_kernel *k, int (*fn)(const struct usmc_kentry *e, void *arg),
		     void *arg);
/* Sockets the program has made SMC since it was loaded. */
uint64_t usmc_kernel_switched(struct usmc_kernel *k);

/* Entries from what a user names. */
int usmc_kentry_cgroup(const char *path, struct usmc_kentry *e, char *why, size_t len);
int usmc_kentry_pid(pid_t pid, struct usmc_kentry *e, char *why, size_t len);
int usmc_kentry_netns(const char *path_or_pid, struct usmc_kentry *e, char *why, size_t len);
int usmc_kentry_comm(const char *name, struct usmc_kentry *e, char *why, size_t len);
/* The start time of a process as the BPF program compares it, 0 if gone. */
uint64_t usmc_kernel_pid_start(pid_t pid);
/* The mount point of cgroup v2 into dir, false if none. */
bool usmc_kernel_cgroup2_mount(char *dir, size_t size);

#endif
