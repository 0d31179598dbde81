/* SPDX-License-Identifier: MIT */
/*
 * The new image's side of exec (usmc_exec_adopt.c): the connections and
 * listeners the old image wrote, mapped and made usmc sockets again.
 */
#ifndef USMC_EXEC_ADOPT_H
#define USMC_EXEC_ADOPT_H

/* In the new image: takes over what USMC_EXEC_FD names, if anything. */
void usmc_exec_adopt(void);

#endif /* USMC_EXEC_ADOPT_H */
