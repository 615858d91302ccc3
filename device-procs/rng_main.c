/* SPDX-License-Identifier: Apache-2.0 */
#include "rng.h"

int main(int argc, char **argv)
{
	return device_main(argc, argv, &rng_ops);
}
