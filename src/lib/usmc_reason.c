// SPDX-License-Identifier: MIT
/*
 * The fallback reasons' texts (USMC_DECL_* in usmc.h), for usmc_info's
 * callers and the log.
 */
#include <stdint.h>

#include "usmc.h"

const char *usmc_reason_str(uint32_t reason)
{
	switch (reason) {
	case 0:
		return "none";
	case USMC_DECL_MEM:
		return "insufficient memory resources";
	case USMC_DECL_TIMEOUT_CLC:
		return "CLC handshake timed out";
	case USMC_DECL_CHAN_BUSY:
		return "listener's handshake channel busy";
	case USMC_DECL_CNFERR:
		return "configuration error";
	case USMC_DECL_POLICY:
		return "policy selects TCP";
	case USMC_DECL_FOREIGN:
		return "peer runs as another user";
	case USMC_DECL_ENV:
		return "environment refuses shared memory";
	case USMC_DECL_DISABLED:
		return "usmc disabled";
	case USMC_DECL_SOCKOPT:
		return "socket option rules out SMC";
	case USMC_DECL_LISTENSHARED:
		return "listener shared by several processes";
	case USMC_DECL_SNAT:
		return "source address translated on the way";
	case USMC_DECL_PASSED:
		return "connections handed to other processes";
	case USMC_DECL_REDIRECTED:
		return "connection redirected to another listener";
	case USMC_DECL_PEERNOSMC:
		return "peer did not indicate SMC";
	case USMC_DECL_NOSMCDEV:
		return "peer not on this host";
	case USMC_DECL_VERSMISMAT:
		return "SMC version mismatch";
	case USMC_DECL_MAX_DMB:
		return "buffer limit reached";
	case USMC_DECL_SYNCERR:
		return "synchronization error";
	case USMC_DECL_FOREIGN_BYTES:
		return "bytes on the TCP stream outside usmc";
	case USMC_DECL_PEERDECL:
		return "peer declined during handshake";
	case USMC_DECL_INTERR:
		return "internal error";
	default:
		return "unknown reason";
	}
}
