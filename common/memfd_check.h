/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The checks a guest memory fd passes before anyone maps it, when it comes
 * from somewhere else than our own memfd_create(): the service manager's fd
 * store hands back what the last process put there, but the fd is checked
 * as if anyone could have put it there.
 */
#ifndef CLOISTER_MEMFD_CHECK_H
#define CLOISTER_MEMFD_CHECK_H

#include <stddef.h>
#include <stdint.h>

/*
 * fd is a sealable memory file (a memfd: F_GET_SEALS answers) of exactly
 * size bytes, sealed against shrinking and growing, not against writing,
 * opened with access mode accmode (O_RDWR or O_RDONLY). 0, or -EINVAL /
 * -errno with err set, naming the fd as what.
 */
int memfd_check(int fd, uint64_t size, int accmode, const char *what, char *err, size_t errlen);

/* Whether fds a and b are the same open file's inode (a read-only twin). 0 or -EINVAL. */
int memfd_same_file(int a, int b);

#endif
