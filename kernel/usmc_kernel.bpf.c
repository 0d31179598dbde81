// SPDX-License-Identifier: MIT
/*
 * Kernel SMC for chosen processes, without restarting them.
 *
 * Since Linux 6.11, socket(AF_INET or AF_INET6, SOCK_STREAM, IPPROTO_SMC)
 * makes a kernel SMC socket that falls back to TCP by itself.  socket()
 * passes its protocol through update_socket_protocol() (net/socket.c, a
 * BPF fmod_ret hook since 6.6), so this program turns the TCP requests of
 * the processes in scope into IPPROTO_SMC.  It sees every socket() call,
 * static binaries and raw system calls included.
 *
 * A process is in scope when its cgroup or one of that cgroup's ancestors,
 * its process or one of its ancestors, its network namespace, or its name
 * is a key of the matching map.  The maps are filled from user space
 * (usmc-kernel, usmc-run --kernel).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "usmc_kernel_maps.h"

#define AF_INET		2
#define AF_INET6	10
#define SOCK_STREAM	1
#define SOCK_TYPE_MASK	0xf	/* the rest of type is SOCK_NONBLOCK, SOCK_CLOEXEC */
#define IPPROTO_TCP	6
#define IPPROTO_SMC	256

/* /proc/PID/stat counts start times in USER_HZ ticks, 100 on x86. */
#define NSEC_PER_USER_TICK 10000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, USMC_KMAP_ENTRIES);
	__type(key, __u64);	/* cgroup v2 id */
	__type(value, __u32);
} usmc_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, USMC_KMAP_ENTRIES);
	__type(key, __u32);	/* process id (tgid) in the initial pid namespace */
	__type(value, struct usmc_kpid);
} usmc_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, USMC_KMAP_ENTRIES);
	__type(key, __u32);	/* inode number of the network namespace */
	__type(value, __u32);
} usmc_netns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, USMC_KMAP_ENTRIES);
	__type(key, char[USMC_KCOMM_LEN]);
	__type(value, __u32);
} usmc_comms SEC(".maps");

/* Sockets made SMC, per CPU so that socket() never contends on it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} usmc_counts SEC(".maps");

static bool cgroup_in_scope(void)
{
	/* Level 0 is the root; a level below the task's own cgroup gives 0. */
	for (int level = 0; level < USMC_KMAX_DEPTH; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);

		if (!id)
			break;
		if (bpf_map_lookup_elem(&usmc_cgroups, &id))
			return true;
	}
	return false;
}

/*
 * The entry carries the start time of the process it was made for, so
 * that a later process reusing the pid is not taken for it.
 */
static bool pid_entry_matches(struct task_struct *task, __u32 tgid)
{
	struct usmc_kpid *entry = bpf_map_lookup_elem(&usmc_pids, &tgid);
	__u64 start;

	if (!entry)
		return false;
	if (!entry->start_ticks)
		return true;
	start = BPF_CORE_READ(task, group_leader, start_boottime);
	return start / NSEC_PER_USER_TICK == entry->start_ticks;
}

static bool pid_in_scope(struct task_struct *task)
{
	for (int depth = 0; depth < USMC_KMAX_DEPTH && task; depth++) {
		__u32 tgid = BPF_CORE_READ(task, tgid);

		if (tgid <= 1)
			break;
		if (pid_entry_matches(task, tgid))
			return true;
		task = BPF_CORE_READ(task, real_parent);
	}
	return false;
}

static bool netns_in_scope(struct task_struct *task)
{
	__u32 inum = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);

	return inum && bpf_map_lookup_elem(&usmc_netns, &inum);
}

/* A thread may have renamed itself: its process's name counts too. */
static bool comm_in_scope(struct task_struct *task)
{
	char comm[USMC_KCOMM_LEN] = {};

	bpf_get_current_comm(comm, sizeof(comm));
	if (bpf_map_lookup_elem(&usmc_comms, comm))
		return true;
	__builtin_memset(comm, 0, sizeof(comm));
	BPF_CORE_READ_STR_INTO(&comm, task, group_leader, comm);
	return bpf_map_lookup_elem(&usmc_comms, comm) != NULL;
}

static bool in_scope(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return cgroup_in_scope() || pid_in_scope(task) || netns_in_scope(task) ||
	       comm_in_scope(task);
}

/*
 * Returning 0 leaves the protocol unchanged: the kernel's own
 * update_socket_protocol() then runs and returns it.  A non-zero value
 * would also skip the other fmod_ret programs on the hook, such as a
 * second instance of this one (usmc-run --kernel beside the pinned one).
 */
#define UNCHANGED 0

SEC("fmod_ret/update_socket_protocol")
int BPF_PROG(usmc_socket_protocol, int family, int type, int protocol)
{
	__u32 zero = 0;
	__u64 *count;

	if (family != AF_INET && family != AF_INET6)
		return UNCHANGED;
	if ((type & SOCK_TYPE_MASK) != SOCK_STREAM)
		return UNCHANGED;
	if (protocol != 0 && protocol != IPPROTO_TCP)
		return UNCHANGED;
	if (!in_scope())
		return UNCHANGED;
	count = bpf_map_lookup_elem(&usmc_counts, &zero);
	if (count)
		*count += 1;
	return IPPROTO_SMC;
}

/* GPL-compatible: tracing programs need bpf_probe_read_kernel and friends. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
