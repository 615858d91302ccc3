/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>

#include "blk.h"
#include "log.h"

/* The disk is probed before confinement: its size and access mode shape what the device offers. */
int main(int argc, char **argv)
{
	static struct blk_disk disk;
	int r;

	log_set_tag("blk");
	r = blk_disk_init(&disk, DEVICE_HOST_FD);
	if (r < 0) {
		log_error("fd %d is not a usable disk image: %s", DEVICE_HOST_FD, strerror(-r));
		return 1;
	}
	return device_main(argc, argv, &disk.ops);
}
