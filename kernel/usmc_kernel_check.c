// SPDX-License-Identifier: MIT
/*
 * What the machine has for the loader (usmc_kernel.c), and how a missing
 * piece is said: the checks in the order usmc_kernel_check() runs them,
 * the one line of reason each leaves in why, and libbpf's messages.
 */
#include <errno.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "usmc_kernel.h"
#include "usmc_kernel_check.h"

#ifndef IPPROTO_SMC
#define IPPROTO_SMC 256
#endif

#define BTF_VMLINUX "/sys/kernel/btf/vmlinux"
#define BTF_SMC "/sys/kernel/btf/smc"
#define BPFFS "/sys/fs/bpf"

void say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

const char *err_str(int err)
{
	if (err < 0)
		err = -err;
	if (err == ENOTSUPP_KERNEL)
		return "Operation not supported (ENOTSUPP)";
	return strerror(err);
}

/* ---- libbpf's messages ---- */

static int verbosity;
static char log_buf[16384];
static size_t log_len;

static int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[1024];

	if (level == LIBBPF_DEBUG && verbosity < 2)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (verbosity)
		fputs(line, stderr);
	if (log_len + strlen(line) < sizeof(log_buf)) {
		memcpy(log_buf + log_len, line, strlen(line) + 1);
		log_len += strlen(line);
	}
	return 0;
}

/* libbpf prints to stderr by itself unless told otherwise. */
void quiet_libbpf(void)
{
	static bool done;

	if (!done)
		libbpf_set_print(on_libbpf_print);
	done = true;
}

void usmc_kernel_verbose(int level)
{
	verbosity = level;
	quiet_libbpf();
}

const char *usmc_kernel_log(void)
{
	return log_buf;
}

/* ---- what the machine has ---- */

static bool has_cap(int cap)
{
	struct __user_cap_header_struct head = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = {};

	if (syscall(SYS_capget, &head, data))
		return false;
	return data[cap / 32].effective & (1U << (cap % 32));
}

int usmc_kernel_check_root(char *why, size_t len)
{
	if (has_cap(CAP_SYS_ADMIN) || (has_cap(CAP_BPF) && has_cap(CAP_PERFMON)))
		return 0;
	if (geteuid() != 0)
		say(why, len, "needs root (or CAP_BPF and CAP_PERFMON): run it with sudo");
	else
		say(why, len, "runs as root without CAP_BPF and CAP_PERFMON (in a container?): "
			"needs them, or CAP_SYS_ADMIN");
	return -1;
}

int usmc_kernel_check_btf(char *why, size_t len)
{
	if (access(BTF_VMLINUX, R_OK) == 0)
		return 0;
	say(why, len, "the kernel has no BTF (%s: %s): needs a kernel built with "
	    "CONFIG_DEBUG_INFO_BTF=y", BTF_VMLINUX, strerror(errno));
	return -1;
}

int usmc_kernel_check_smc(char *why, size_t len)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_SMC);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == EPROTONOSUPPORT || errno == ESOCKTNOSUPPORT || errno == EAFNOSUPPORT)
		say(why, len, "the kernel has no SMC sockets (socket(AF_INET, SOCK_STREAM, "
		    "IPPROTO_SMC): %s): needs Linux 6.11+ with the smc module (modprobe smc)",
		    strerror(errno));
	else
		say(why, len, "cannot make a kernel SMC socket: %s", strerror(errno));
	return -1;
}

static bool btf_has(struct btf *btf, const char *name, int kind)
{
	return btf && btf__find_by_name_kind(btf, name, kind) > 0;
}

int usmc_kernel_check_hook(char *why, size_t len)
{
	struct btf *btf;
	bool found;

	quiet_libbpf();
	btf = btf__load_vmlinux_btf();
	if (!btf) {
		say(why, len, "cannot read the kernel's BTF (%s): %s", BTF_VMLINUX, err_str(errno));
		return -1;
	}
	found = btf_has(btf, "update_socket_protocol", BTF_KIND_FUNC);
	btf__free(btf);
	if (found)
		return 0;
	say(why, len, "the kernel has no update_socket_protocol() to hook: needs Linux 6.6+");
	return -1;
}

int usmc_kernel_check_bpffs(char *why, size_t len)
{
	struct statfs st;

	if (statfs(BPFFS, &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	say(why, len, "bpffs is not mounted on " BPFFS ": mount -t bpf bpf " BPFFS);
	return -1;
}

int usmc_kernel_check_cgroup2(char *why, size_t len)
{
	char dir[256];

	if (usmc_kernel_cgroup2_mount(dir, sizeof(dir)))
		return 0;
	say(why, len, "no cgroup v2 hierarchy is mounted: mount -t cgroup2 none /sys/fs/cgroup");
	return -1;
}

int usmc_kernel_check(unsigned int needs, char *why, size_t len)
{
	if (usmc_kernel_check_root(why, len) || usmc_kernel_check_btf(why, len) ||
	    usmc_kernel_check_smc(why, len) || usmc_kernel_check_hook(why, len))
		return -1;
	if ((needs & USMC_KNEED_ATTACH) && usmc_kernel_check_attach(why, len))
		return -1;
	if ((needs & USMC_KNEED_PIN) && usmc_kernel_check_bpffs(why, len))
		return -1;
	if ((needs & USMC_KNEED_CGROUP) && usmc_kernel_check_cgroup2(why, len))
		return -1;
	return 0;
}

/* The struct may be built in or come with the smc module's own BTF. */
bool usmc_kernel_policy_available(void)
{
	struct btf *vmlinux, *smc;
	bool found;

	quiet_libbpf();
	vmlinux = btf__load_vmlinux_btf();
	if (!vmlinux)
		return false;
	found = btf_has(vmlinux, "smc_hs_ctrl", BTF_KIND_STRUCT);
	if (!found && access(BTF_SMC, R_OK) == 0) {
		smc = btf__load_module_btf("smc", vmlinux);
		found = btf_has(smc, "smc_hs_ctrl", BTF_KIND_STRUCT);
		btf__free(smc);
	}
	btf__free(vmlinux);
	return found;
}
