// SPDX-License-Identifier: MIT
/*
 * SMC's codes in words for usmc-stat --kernel: the decline and fallback
 * reasons (SMC_CLC_DECL_*), the states of an SMC socket, and the one line
 * that says why this kernel has no SMC.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json_out.h"
#include "stat_kernel_codes.h"

#ifndef AF_SMC
#define AF_SMC 43
#endif
#ifndef IPPROTO_SMC
#define IPPROTO_SMC 256
#endif

static const struct {
	uint32_t code;
	const char *text;
} decline_codes[] = {
	/* SMC_CLC_DECL_* in net/smc/smc_clc.h */
	{ 0x01010000, "insufficient memory resources" },
	{ 0x02010000, "timeout waiting for confirm link" },
	{ 0x02020000, "timeout waiting for add link" },
	{ 0x03000000, "configuration error" },
	{ 0x03010000, "peer did not indicate SMC" },
	{ 0x03020000, "IPsec usage" },
	{ 0x03030000, "no SMC device found" },
	{ 0x03030001, "no SMC-D device found" },
	{ 0x03030002, "no SMC-R device found" },
	{ 0x03030003, "hardware has no ISMv2 support" },
	{ 0x03030004, "peer sent no CLC v2 extension" },
	{ 0x03030005, "peer sent no SMC-Dv2 extension" },
	{ 0x03030006, "peer sent no SEID" },
	{ 0x03030007, "no SMC-Dv2 device found" },
	{ 0x03030008, "peer sent no UEID" },
	{ 0x03030009, "release version negotiation failed" },
	{ 0x0303000a, "max connections negotiation failed" },
	{ 0x0303000b, "max links negotiation failed" },
	{ 0x03040000, "SMC modes do not match" },
	{ 0x03050000, "peer has eyecatcher in RMBE" },
	{ 0x03060000, "fastopen sockopt not supported" },
	{ 0x03070000, "IP prefix / subnet mismatch" },
	{ 0x03080000, "cannot get VLAN id of IP device" },
	{ 0x03090000, "cannot register VLAN id on ISM device" },
	{ 0x030a0000, "no active SMC-R link in link group" },
	{ 0x030b0000, "SMC-R link from server not found" },
	{ 0x030c0000, "SMC version mismatch" },
	{ 0x030d0000, "SMC-D DMB limit exceeded" },
	{ 0x030e0000, "SMC-Rv2: no route to peer" },
	{ 0x030f0000, "SMC-Rv2: indirect route mismatch" },
	{ 0x04000000, "synchronization error" },
	{ 0x05000000, "peer declined during handshake" },
	{ 0x09990000, "internal error" },
	{ 0x09990001, "rtoken handling failed" },
	{ 0x09990002, "RDMA link not ready" },
	{ 0x09990003, "RDMA buffer registration failed" },
};

const char *decline_text(uint32_t code)
{
	if (!code)
		return "-";
	for (size_t i = 0; i < sizeof(decline_codes) / sizeof(decline_codes[0]); i++)
		if (decline_codes[i].code == code)
			return decline_codes[i].text;
	return "unknown reason";
}

const char *smc_state_name(unsigned state)
{
	/* enum smc_state in net/smc/smc.h */
	static const char *const names[] = {
		[1] = "ACTIVE", [2] = "INIT", [7] = "CLOSED", [10] = "LISTEN",
		[20] = "PEERCLW1", [21] = "PEERCLW2", [22] = "APPCLW1", [23] = "APPCLW2",
		[24] = "APPFINCLW", [25] = "PEERFINCLW", [26] = "PEERABORTW", [27] = "PROCESSABORT",
	};

	return state < sizeof(names) / sizeof(names[0]) && names[state] ? names[state] : "?";
}

/* Why this kernel cannot do SMC, in words, or NULL if it can. */
const char *smc_missing(char *why, size_t len)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_SMC), err;

	if (fd >= 0) {
		close(fd);
		return NULL;
	}
	err = errno;
	/* Before 6.11 SMC exists as AF_SMC only. */
	fd = socket(AF_SMC, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		close(fd);
		return NULL;
	}
	snprintf(why, len, "%s (socket(AF_INET, SOCK_STREAM, %d): %s); needs Linux 6.11+ with CONFIG_SMC",
		 err == EPROTONOSUPPORT || err == EAFNOSUPPORT ? "the kernel has no smc module"
							     : "SMC sockets are refused here",
		 IPPROTO_SMC, strerror(err));
	return why;
}

int not_available(bool json, const char *why)
{
	if (json) {
		printf("{\"kernel_smc\": {\"available\": false, \"reason\": ");
		json_string(why, 4096);
		printf("}}\n");
	} else {
		printf("kernel SMC: not available: %s\n", why);
	}
	return 0;
}
