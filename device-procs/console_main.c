/* SPDX-License-Identifier: Apache-2.0 */
#include "console.h"

int main(int argc, char **argv)
{
	return device_main(argc, argv, &console_ops);
}
