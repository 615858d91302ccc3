/* SPDX-License-Identifier: Apache-2.0 */
#include "net.h"

int main(int argc, char **argv)
{
	return device_main(argc, argv, &net_ops);
}
