/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>

#include "remote.h"

int main(int argc, char **argv)
{
	return remote_main(argc, argv, stdout, stderr);
}
