/* SPDX-License-Identifier: MIT */
/* Fork detection without a system call: a generation counter that a pthread_atfork child handler
 * (registered once, pthread_once) bumps in the child of every fork(). A Session or a Multi records
 * the generation it opened its handles in; a different one later means it is now in a child.
 * (glibc >= 2.25 caches no pid: getpid() is a real system call on every request.)
 *
 * A child made without fork()'s atfork handlers (a raw syscall(SYS_fork) or clone, or vfork, whose
 * child may only exec or _exit anyway) is not seen: its objects believe they are the parent's.
 *
 * Pure core: no Lua header. The counter and its handler live in et_fork.c. */
#ifndef ET_FORK_H
#define ET_FORK_H

/* The current generation; registers the handler on the first call (thread-safe). Call it when an
 * object opens its handles: any generation it later compares with is then counted. */
unsigned long et_fork_register(void);

/* The current generation, without the registration check (a plain load): for objects that called
 * et_fork_register when they opened. */
extern volatile unsigned long et_fork_generation;
static inline unsigned long et_fork_now(void)
{
    return et_fork_generation;
}

#endif
