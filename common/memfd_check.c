/* SPDX-License-Identifier: Apache-2.0 */
#include "memfd_check.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "errmsg.h"

#define SEALS_NEEDED (F_SEAL_SHRINK | F_SEAL_GROW)
#define SEALS_REFUSED (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)

int memfd_check(int fd, uint64_t size, int accmode, const char *what, char *err, size_t errlen)
{
	struct stat st;
	int seals, fl;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err_set(err, errlen, "%s is not a regular file", what);
		return -EINVAL;
	}
	/* Only shmem (memfd) and hugetlbfs files answer F_GET_SEALS. */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0) {
		err_set(err, errlen, "%s is not a memfd (no seals: %m)", what);
		return -EINVAL;
	}
	if ((seals & SEALS_NEEDED) != SEALS_NEEDED || (seals & SEALS_REFUSED)) {
		err_set(err, errlen, "%s has seals 0x%x, not shrink and grow without write", what,
			(unsigned)seals);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size != size) {
		err_set(err, errlen, "%s holds %" PRIu64 " bytes, the region %" PRIu64, what,
			(uint64_t)st.st_size, size);
		return -EINVAL;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) != accmode) {
		err_set(err, errlen, "%s is not open %s", what,
			accmode == O_RDWR ? "read-write" : "read-only");
		return -EINVAL;
	}
	return 0;
}

int memfd_same_file(int a, int b)
{
	struct stat sa, sb;

	if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0 || sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino)
		return -EINVAL;
	return 0;
}
