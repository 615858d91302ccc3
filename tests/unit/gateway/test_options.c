/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "devices.h"
#include "options.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static char err[256];

static int parse(int argc, const char **argv, struct vm_options *o)
{
	memset(err, 0, sizeof(err));
	return options_parse(argc, (char **)argv, o, err, sizeof(err));
}

/* Parses and expects -EINVAL with a message that contains needle. */
static void expect_refused(int argc, const char **argv, const char *needle)
{
	struct vm_options o = { .cpus = 77 };

	cr_expect_eq(parse(argc, argv, &o), -EINVAL, "'%s %s' was accepted", argv[1],
		     argc > 2 ? argv[2] : "");
	cr_expect(strstr(err, needle), "error '%s' lacks '%s'", err, needle);
	cr_expect_eq(o.cpus, 77, "ret written on failure");
}

Test(options, defaults)
{
	const char *argv[] = { "cloister" };
	struct vm_options o;
	struct passwd *pw = getpwnam("nobody");

	cr_assert_eq(parse(ARGC(argv), argv, &o), 0, "%s", err);
	cr_expect_eq(o.cpus, 1);
	cr_expect_eq(o.memory_size, 512ull << 20);
	cr_expect_eq(o.serial_mode, CLOISTER__SERIAL_MODE__SERIAL_TTY);
	cr_expect_null(o.kernel);
	cr_expect_null(o.restore_source_url);
	cr_expect_null(o.api_socket);
	cr_expect(!o.rng);
	cr_assert_not_null(pw);
	cr_expect_eq(o.child_uid, pw->pw_uid);
	cr_expect_eq(o.child_gid, pw->pw_gid);
	options_free(&o);
}

Test(options, full_boot_line)
{
	const char *argv[] = { "cloister", "--api-socket", "/tmp/a.sock", "--cpus", "boot=4",
			       "--memory", "size=1G", "--kernel", "/k", "--initramfs", "/i",
			       "--cmdline", "console=hvc0 quiet", "--serial", "file=/tmp/s.log",
			       "--console", "off", "--rng", "src=/dev/urandom", "-v",
			       "--sandbox-user", "daemon:nogroup" };
	struct vm_options o;

	cr_assert_eq(parse(ARGC(argv), argv, &o), 0, "%s", err);
	cr_expect_str_eq(o.api_socket, "/tmp/a.sock");
	cr_expect_eq(o.cpus, 4);
	cr_expect_eq(o.memory_size, 1ull << 30);
	cr_expect_str_eq(o.kernel, "/k");
	cr_expect_str_eq(o.initramfs, "/i");
	cr_expect_str_eq(o.cmdline, "console=hvc0 quiet");
	cr_expect_eq(o.serial_mode, CLOISTER__SERIAL_MODE__SERIAL_FILE);
	cr_expect_str_eq(o.serial_path, "/tmp/s.log");
	cr_expect(o.rng);
	cr_expect(o.verbose);
	cr_expect_eq(o.child_uid, getpwnam("daemon")->pw_uid);
	cr_expect_eq(o.child_gid, 65534);
	options_free(&o);
}

Test(options, equals_forms)
{
	const char *argv[] = { "cloister", "--api-socket=path=/run/x.sock", "--memory=size=16M",
			       "--cpus=boot=64", "--serial=null", "--rng", "--verbose", "--kernel=/k" };
	struct vm_options o;

	cr_assert_eq(parse(ARGC(argv), argv, &o), 0, "%s", err);
	cr_expect_str_eq(o.api_socket, "/run/x.sock");
	cr_expect_eq(o.memory_size, 16ull << 20);
	cr_expect_eq(o.cpus, 64);
	cr_expect_eq(o.serial_mode, CLOISTER__SERIAL_MODE__SERIAL_NULL);
	cr_expect(o.rng);
	options_free(&o);
}

Test(options, restore_line)
{
	const char *argv[] = { "cloister", "--restore", "source_url=file:///var/snap,resume=true" };
	struct vm_options o;

	cr_assert_eq(parse(ARGC(argv), argv, &o), 0, "%s", err);
	cr_expect_str_eq(o.restore_source_url, "file:///var/snap");
	cr_expect(o.restore_resume);
	options_free(&o);
}

Test(options, restore_key)
{
	const char *file[] = { "cloister", "--restore", "source_url=file:///var/snap",
			       "--restore-key-file", "/etc/cloister/snap.key" };
	const char *cred[] = { "cloister", "--restore", "source_url=file:///var/snap",
			       "--restore-key-credential", "snapkey" };
	const char *both[] = { "cloister", "--restore", "source_url=file:///var/snap",
			       "--restore-key-credential", "snapkey", "--restore-key-file", "/k" };
	const char *alone[] = { "cloister", "--restore-key-file", "/k" };
	const char *relative[] = { "cloister", "--restore", "source_url=file:///var/snap",
				   "--restore-key-file", "k" };
	const char *slash[] = { "cloister", "--restore", "source_url=file:///var/snap",
				"--restore-key-credential", "../k" };
	struct vm_options o;

	cr_assert_eq(parse(ARGC(file), file, &o), 0, "%s", err);
	cr_expect_str_eq(o.restore_key_file, "/etc/cloister/snap.key");
	options_free(&o);
	cr_assert_eq(parse(ARGC(cred), cred, &o), 0, "%s", err);
	cr_expect_str_eq(o.restore_key_credential, "snapkey");
	options_free(&o);
	expect_refused(ARGC(both), both, "mutually exclusive");
	expect_refused(ARGC(alone), alone, "need --restore");
	expect_refused(ARGC(relative), relative, "absolute path");
	expect_refused(ARGC(slash), slash, "credential's name");
}

static void expect_stdout_contains(const char *needle)
{
	char buf[4096];
	size_t n;

	fflush(stdout);
	n = fread(buf, 1, sizeof(buf) - 1, cr_get_redirected_stdout());
	buf[n] = '\0';
	cr_expect(strstr(buf, needle), "stdout '%s' lacks '%s'", buf, needle);
}

Test(options, help_stops, .init = cr_redirect_stdout)
{
	const char *h[] = { "cloister", "--kernel", "/k", "--help", "--bogus" };
	struct vm_options o = { .cpus = 77 };

	cr_expect_eq(parse(ARGC(h), h, &o), 1);
	cr_expect_eq(o.cpus, 77);
	expect_stdout_contains("--api-socket");
}

Test(options, version_stops, .init = cr_redirect_stdout)
{
	const char *v[] = { "cloister", "-V" };
	struct vm_options o;

	cr_expect_eq(parse(ARGC(v), v, &o), 1);
	expect_stdout_contains("cloister ");
}

Test(options, memory_bounds)
{
	const char *small[] = { "cloister", "--memory", "size=15M" };
	const char *big[] = { "cloister", "--memory", "size=65G" };
	const char *unaligned[] = { "cloister", "--memory", "size=16777217" };
	const char *overflow[] = { "cloister", "--memory", "size=18446744073709551616" };
	const char *shift_overflow[] = { "cloister", "--memory", "size=17179869184G" };
	const char *suffix[] = { "cloister", "--memory", "size=512MB" };
	const char *negative[] = { "cloister", "--memory", "size=-1G" };

	expect_refused(ARGC(small), small, "between");
	expect_refused(ARGC(big), big, "between");
	expect_refused(ARGC(unaligned), unaligned, "multiple");
	expect_refused(ARGC(overflow), overflow, "not a size");
	expect_refused(ARGC(shift_overflow), shift_overflow, "not a size");
	expect_refused(ARGC(suffix), suffix, "not a size");
	expect_refused(ARGC(negative), negative, "not a size");
}

Test(options, kv_hostility)
{
	const char *dup[] = { "cloister", "--memory", "size=1G,size=2G" };
	const char *unknown[] = { "cloister", "--memory", "size=1G,shared=on" };
	const char *empty_val[] = { "cloister", "--cpus", "boot=" };
	const char *no_eq[] = { "cloister", "--cpus", "4" };
	const char *empty_item[] = { "cloister", "--cpus", "boot=2,," };
	const char *zero[] = { "cloister", "--cpus", "boot=0" };
	const char *many[] = { "cloister", "--cpus", "boot=65" };
	const char *huge[] = { "cloister", "--cpus", "boot=4294967297" };
	const char *suffixed[] = { "cloister", "--cpus", "boot=1K" };

	expect_refused(ARGC(dup), dup, "repeated key 'size'");
	expect_refused(ARGC(unknown), unknown, "unknown key 'shared'");
	expect_refused(ARGC(empty_val), empty_val, "boot");
	expect_refused(ARGC(no_eq), no_eq, "key=value");
	expect_refused(ARGC(empty_item), empty_item, "empty");
	expect_refused(ARGC(zero), zero, "1 to 64");
	expect_refused(ARGC(many), many, "1 to 64");
	expect_refused(ARGC(huge), huge, "1 to 64");
	expect_refused(ARGC(suffixed), suffixed, "1 to 64");
}

Test(options, unsupported_sources_and_modes)
{
	const char *rng_src[] = { "cloister", "--rng", "src=/tmp/file" };
	const char *serial[] = { "cloister", "--serial", "socket" };
	const char *console_socket[] = { "cloister", "--kernel", "/k", "--console", "socket=/tmp/c" };

	expect_refused(ARGC(rng_src), rng_src, "/dev/urandom");
	expect_refused(ARGC(serial), serial, "socket=PATH");
	expect_refused(ARGC(console_socket), console_socket, "expected off");
}

Test(options, pty_and_socket_sinks)
{
	const char *pty[] = { "cloister", "--kernel", "/k", "--serial", "pty", "--console", "pty" };
	const char *sock[] = { "cloister", "--serial=socket=/run/vm/serial.sock" };
	struct vm_options o;

	cr_assert_eq(parse(ARGC(pty), pty, &o), 0, "%s", err);
	cr_expect_eq(o.serial_mode, CLOISTER__SERIAL_MODE__SERIAL_PTY);
	cr_expect_eq(o.console_mode, CLOISTER__SERIAL_MODE__SERIAL_PTY);
	cr_expect_null(o.serial_path);
	cr_expect_null(o.console_path);
	options_free(&o);
	cr_assert_eq(parse(ARGC(sock), sock, &o), 0, "%s", err);
	cr_expect_eq(o.serial_mode, CLOISTER__SERIAL_MODE__SERIAL_SOCKET);
	cr_expect_str_eq(o.serial_path, "/run/vm/serial.sock");
	options_free(&o);
}

Test(options, hostile_sink_paths)
{
	char longest[OPTIONS_SOCKET_PATH_MAX + 7] = "socket=/", overlong[OPTIONS_SOCKET_PATH_MAX + 8] = "socket=/";
	const char *empty[] = { "cloister", "--serial", "socket=" };
	const char *relative[] = { "cloister", "--serial", "socket=vm.sock" };
	const char *dotted[] = { "cloister", "--serial", "socket=./vm.sock" };
	const char *file_relative[] = { "cloister", "--serial", "file=serial.log" };
	const char *file_empty[] = { "cloister", "--kernel", "/k", "--console", "file=" };
	const char *too_long[] = { "cloister", "--serial", overlong };
	const char *just_fits[] = { "cloister", "--serial", longest };
	const char *api_too[] = { "cloister", "--api-socket", "/tmp/a.sock", "--serial", "socket=/tmp/a.sock" };
	const char *twice[] = { "cloister", "--serial", "pty", "--serial", "socket=/tmp/s" };
	struct vm_options o;

	/* sun_path holds 107 bytes and the NUL: 107 fit, 108 do not. */
	memset(longest + 8, 'a', OPTIONS_SOCKET_PATH_MAX - 2);
	longest[sizeof(longest) - 1] = '\0';
	memset(overlong + 8, 'a', OPTIONS_SOCKET_PATH_MAX - 1);
	overlong[sizeof(overlong) - 1] = '\0';
	cr_assert_eq(strlen(longest + 7), OPTIONS_SOCKET_PATH_MAX - 1);
	cr_assert_eq(strlen(overlong + 7), OPTIONS_SOCKET_PATH_MAX);
	expect_refused(ARGC(empty), empty, "needs a path");
	expect_refused(ARGC(relative), relative, "absolute");
	expect_refused(ARGC(dotted), dotted, "absolute");
	expect_refused(ARGC(file_relative), file_relative, "absolute");
	expect_refused(ARGC(file_empty), file_empty, "needs a path");
	expect_refused(ARGC(too_long), too_long, "longer than 107");
	expect_refused(ARGC(api_too), api_too, "API socket");
	expect_refused(ARGC(twice), twice, "more than once");
	cr_assert_eq(parse(ARGC(just_fits), just_fits, &o), 0, "%s", err);
	cr_expect_str_eq(o.serial_path, longest + 7);
	options_free(&o);
}

Test(options, disks_nets_and_console)
{
	const char *argv[] = { "cloister", "--kernel", "/k", "--disk", "path=/a.img",
			       "--disk", "path=/b.img,readonly=on,id=data", "--net", "tap=tap0",
			       "--net=tap=tap1,mac=52:54:00:12:34:56,id=lan", "--console", "file=/tmp/hvc" };
	struct vm_options o;

	cr_assert_eq(parse(ARGC(argv), argv, &o), 0, "%s", err);
	cr_assert_eq(o.n_disks, 2);
	cr_expect_str_eq(o.disks[0].path, "/a.img");
	cr_expect_str_eq(o.disks[0].id, "disk0");
	cr_expect_not(o.disks[0].readonly);
	cr_expect_str_eq(o.disks[1].id, "data");
	cr_expect(o.disks[1].readonly);
	cr_assert_eq(o.n_nets, 2);
	cr_expect_str_eq(o.nets[0].tap, "tap0");
	cr_expect_null(o.nets[0].mac);
	cr_expect_str_eq(o.nets[0].id, "net0");
	cr_expect_str_eq(o.nets[1].mac, "52:54:00:12:34:56");
	cr_expect_str_eq(o.nets[1].id, "lan");
	cr_expect_eq(o.console_mode, CLOISTER__SERIAL_MODE__SERIAL_FILE);
	cr_expect_str_eq(o.console_path, "/tmp/hvc");
	options_free(&o);
}

Test(options, hostile_device_specs)
{
	const char *no_kernel[] = { "cloister", "--disk", "path=/x.img" };
	const char *no_path[] = { "cloister", "--kernel", "/k", "--disk", "readonly=on" };
	const char *bad_ro[] = { "cloister", "--kernel", "/k", "--disk", "path=/x,readonly=maybe" };
	const char *bad_id[] = { "cloister", "--kernel", "/k", "--disk", "path=/x,id=../etc" };
	const char *dup_id[] = { "cloister", "--kernel", "/k", "--disk", "path=/x,id=a", "--net",
				 "tap=t0,id=a" };
	const char *too_many[] = { "cloister", "--kernel", "/k", "--disk", "path=/1", "--disk",
				   "path=/2", "--disk", "path=/3", "--disk", "path=/4", "--disk",
				   "path=/5" };
	const char *bad_mac[] = { "cloister", "--kernel", "/k", "--net", "tap=t0,mac=01:00:00:00:00:01" };
	const char *short_mac[] = { "cloister", "--kernel", "/k", "--net", "tap=t0,mac=52:54:00:1:2:3" };
	const char *long_tap[] = { "cloister", "--kernel", "/k", "--net", "tap=abcdefghijklmnopq" };
	const char *no_tap[] = { "cloister", "--kernel", "/k", "--net", "mac=52:54:00:12:34:56" };
	const char *console[] = { "cloister", "--kernel", "/k", "--console", "socket" };

	expect_refused(ARGC(no_kernel), no_kernel, "need --kernel");
	expect_refused(ARGC(no_path), no_path, "path= is required");
	expect_refused(ARGC(bad_ro), bad_ro, "readonly=maybe");
	expect_refused(ARGC(bad_id), bad_id, "id=../etc");
	expect_refused(ARGC(dup_id), dup_id, "used twice");
	expect_refused(ARGC(too_many), too_many, "at most 4 disks");
	expect_refused(ARGC(bad_mac), bad_mac, "unicast");
	expect_refused(ARGC(short_mac), short_mac, "mac=");
	expect_refused(ARGC(long_tap), long_tap, "tap=NAME");
	expect_refused(ARGC(no_tap), no_tap, "tap=NAME");
	expect_refused(ARGC(console), console, "expected off");
}

Test(options, structural_errors)
{
	const char *repeated[] = { "cloister", "--kernel", "/a", "--kernel", "/b" };
	const char *missing[] = { "cloister", "--kernel" };
	const char *empty[] = { "cloister", "--kernel=" };
	const char *unknown[] = { "cloister", "--frobnicate" };
	const char *positional[] = { "cloister", "vmlinux" };
	const char *flag_value[] = { "cloister", "--verbose=yes" };
	const char *both[] = { "cloister", "--kernel", "/k", "--restore", "source_url=file:///s" };
	const char *orphan[] = { "cloister", "--initramfs", "/i" };
	const char *fd_socket[] = { "cloister", "--api-socket", "fd=3" };
	const char *empty_socket[] = { "cloister", "--api-socket", "path=" };

	expect_refused(ARGC(repeated), repeated, "more than once");
	expect_refused(ARGC(missing), missing, "needs a value");
	expect_refused(ARGC(empty), empty, "non-empty");
	expect_refused(ARGC(unknown), unknown, "unknown option");
	expect_refused(ARGC(positional), positional, "unexpected argument");
	expect_refused(ARGC(flag_value), flag_value, "takes no value");
	expect_refused(ARGC(both), both, "mutually exclusive");
	expect_refused(ARGC(orphan), orphan, "needs --kernel");
	expect_refused(ARGC(fd_socket), fd_socket, "not supported");
	expect_refused(ARGC(empty_socket), empty_socket, "non-empty");
}

Test(options, overlong_value)
{
	char *big = malloc(OPTIONS_VALUE_MAX + 10);
	const char *argv[] = { "cloister", "--cmdline", big };

	cr_assert_not_null(big);
	memset(big, 'a', OPTIONS_VALUE_MAX + 9);
	big[OPTIONS_VALUE_MAX + 9] = '\0';
	expect_refused(ARGC(argv), argv, "longer than");
	free(big);
}

Test(options, sandbox_user)
{
	const char *root[] = { "cloister", "--sandbox-user", "root" };
	const char *unknown[] = { "cloister", "--sandbox-user", "no-such-user-here" };
	const char *bad_group[] = { "cloister", "--sandbox-user", "nobody:no-such-group-here" };
	const char *empty_group[] = { "cloister", "--sandbox-user", "nobody:" };
	const char *numeric[] = { "cloister", "--sandbox-user", "4242:4343" };
	const char *root_group[] = { "cloister", "--sandbox-user", "nobody:0" };
	struct vm_options o;

	expect_refused(ARGC(root), root, "root");
	expect_refused(ARGC(unknown), unknown, "unknown user");
	expect_refused(ARGC(bad_group), bad_group, "unknown group");
	expect_refused(ARGC(empty_group), empty_group, "USER[:GROUP]");
	expect_refused(ARGC(root_group), root_group, "root");
	cr_assert_eq(parse(ARGC(numeric), numeric, &o), 0, "%s", err);
	cr_expect_eq(o.child_uid, 4242);
	cr_expect_eq(o.child_gid, 4343);
	options_free(&o);
}

Test(options, parse_file_url)
{
	char *path = NULL;

	cr_assert_eq(parse_file_url("file:///var/lib/snap", &path), 0);
	cr_expect_str_eq(path, "/var/lib/snap");
	free(path);
	path = NULL;
	cr_expect_eq(parse_file_url("file://", &path), -EINVAL);
	cr_expect_eq(parse_file_url("file://host/x", &path), -EINVAL);
	cr_expect_eq(parse_file_url("file:relative", &path), -EINVAL);
	cr_expect_eq(parse_file_url("http:///x", &path), -EINVAL);
	cr_expect_eq(parse_file_url("/plain/path", &path), -EINVAL);
	cr_expect_eq(parse_file_url("file:///a\nb", &path), -EINVAL);
	cr_expect_eq(parse_file_url("", &path), -EINVAL);
	cr_expect_eq(parse_file_url(NULL, &path), -EINVAL);
	cr_expect_null(path, "ret_path written on failure");
}

Test(options, parse_restore_spec)
{
	char *url = NULL;
	enum restore_mode od = RESTORE_MODE_COPY;
	bool resume = true;

	cr_assert_eq(parse_restore_spec("source_url=file:///s", &url, &resume, &od), 0);
	cr_expect_str_eq(url, "file:///s");
	cr_expect(!resume);
	cr_expect_eq(od, RESTORE_MODE_DEFAULT, "no mode named");
	free(url);
	cr_assert_eq(parse_restore_spec("resume=on,prefault=off,source_url=file:///t", &url, &resume, &od), 0);
	cr_expect_str_eq(url, "file:///t");
	cr_expect(resume);
	free(url);
	url = NULL;
	cr_expect_eq(parse_restore_spec("resume=true", &url, &resume, &od), -EINVAL);
	cr_expect_eq(parse_restore_spec("source_url=file:///s,resume=maybe", &url, &resume, &od), -EINVAL);
	cr_expect_eq(parse_restore_spec("source_url=file:///s,source_url=file:///t", &url, &resume, &od), -EINVAL);
	cr_expect_eq(parse_restore_spec("source_url=/s", &url, &resume, &od), -EINVAL);
	cr_expect_eq(parse_restore_spec("source_url=file:///s,colour=red", &url, &resume, &od), -EINVAL);
	cr_expect_eq(parse_restore_spec("", &url, &resume, &od), -EINVAL);
	cr_expect_null(url);
}

Test(options, parse_restore_spec_memory_mode)
{
	char *url = NULL;
	enum restore_mode od = RESTORE_MODE_DEFAULT;
	bool resume;

	cr_assert_eq(parse_restore_spec("source_url=file:///s,memory_restore_mode=OnDemand", &url,
					&resume, &od), 0);
	cr_expect_eq(od, RESTORE_MODE_ON_DEMAND);
	free(url);
	cr_assert_eq(parse_restore_spec("source_url=file:///s,memory_restore_mode=Copy", &url,
					&resume, &od), 0);
	cr_expect_eq(od, RESTORE_MODE_COPY);
	free(url);
	od = RESTORE_MODE_DEFAULT;
	cr_assert_eq(parse_restore_spec("source_url=file:///s,prefault=true", &url, &resume, &od), 0);
	cr_expect_eq(od, RESTORE_MODE_COPY, "prefault=true copies everything before answering");
	free(url);
	url = NULL;
	cr_expect_eq(parse_restore_spec("source_url=file:///s,memory_restore_mode=OnDemand,prefault=on",
					&url, &resume, &od), -EINVAL);
	cr_expect_eq(parse_restore_spec("source_url=file:///s,memory_restore_mode=Lazy", &url,
					&resume, &od), -EINVAL);
	cr_expect_eq(parse_restore_spec("source_url=file:///s,memory_restore_mode=ondemand", &url,
					&resume, &od), -EINVAL);
	cr_expect_null(url);
}

Test(options, parse_size)
{
	uint64_t v = 0;

	cr_expect_eq(parse_size("4K", &v), 0);
	cr_expect_eq(v, 4096);
	cr_expect_eq(parse_size("18446744073709551615", &v), 0);
	cr_expect_eq(v, UINT64_MAX);
	cr_expect_eq(parse_size("18446744073709551616", &v), -ERANGE);
	cr_expect_eq(parse_size("17179869184G", &v), -ERANGE);
	cr_expect_eq(parse_size("", &v), -EINVAL);
	cr_expect_eq(parse_size("G", &v), -EINVAL);
	cr_expect_eq(parse_size(" 1", &v), -EINVAL);
	cr_expect_eq(parse_size("1 ", &v), -EINVAL);
}

/*
 * The sinks the options select (devices.c). They live here because this is
 * the test program of the gateway's options; they open real ptys and sockets.
 */

static Cloister__SerialConfig sink_config(Cloister__SerialMode mode, char *path)
{
	Cloister__SerialConfig s = CLOISTER__SERIAL_CONFIG__INIT;

	s.mode = mode;
	s.path = path ? path : "";
	return s;
}

/* Reads exactly len bytes within a few seconds, or fails the test. */
static void read_exactly(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		cr_assert_eq(poll(&p, 1, 5000), 1, "nothing to read after %zu of %zu bytes", got, len);
		n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EAGAIN)
			continue;
		cr_assert_gt(n, 0, "read: %s", n < 0 ? strerror(errno) : "end of file");
		got += (size_t)n;
	}
}

static void write_all(int fd, const char *buf)
{
	cr_assert_eq(send(fd, buf, strlen(buf), MSG_NOSIGNAL), (ssize_t)strlen(buf), "send: %s",
		     strerror(errno));
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect %s: %s", path,
		     strerror(errno));
	return fd;
}

static char *temp_dir(void)
{
	char *dir = strdup("/tmp/cloister-sink-XXXXXX");

	cr_assert_not_null(dir);
	cr_assert_not_null(mkdtemp(dir));
	return dir;
}

Test(sink, pty_is_raw_and_never_blocks)
{
	Cloister__SerialConfig cfg = sink_config(CLOISTER__SERIAL_MODE__SERIAL_PTY, NULL);
	struct sink s = SINK_INIT;
	char err[256] = "", buf[16], fill[4096];
	int slave, writes = 0;
	ssize_t n = 0;

	cr_assert_eq(sink_open(&cfg, false, &s, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(strncmp(s.pty_path, "/dev/pts/", 9), 0, "%s", s.pty_path);
	cr_assert_geq(s.out_fd, 0);
	cr_assert_geq(s.in_fd, 0);
	cr_expect_geq(s.pty_slave_fd, 0, "the gateway holds the slave");
	cr_expect(fcntl(s.out_fd, F_GETFL) & O_NONBLOCK);
	cr_expect(fcntl(s.out_fd, F_GETFD) & FD_CLOEXEC);
	slave = open(s.pty_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	cr_assert_geq(slave, 0, "open %s: %s", s.pty_path, strerror(errno));
	/* Raw: no CR added before LF, no echo back into the output, no line buffering. */
	cr_assert_eq(write(s.out_fd, "a\nb\r", 4), 4);
	read_exactly(slave, buf, 4);
	cr_expect_eq(memcmp(buf, "a\nb\r", 4), 0);
	cr_assert_eq(write(slave, "xy\n", 3), 3);
	read_exactly(s.in_fd, buf, 3);
	cr_expect_eq(memcmp(buf, "xy\n", 3), 0);
	close(slave);
	/* With nobody reading, the output fills up and then refuses rather than waits. */
	memset(fill, 'z', sizeof(fill));
	while (writes++ < 10000 && (n = write(s.out_fd, fill, sizeof(fill))) > 0)
		;
	cr_expect_eq(n, -1);
	cr_expect_eq(errno, EAGAIN);
	/* The gateway's slave keeps the master from reading EIO once the reader left. */
	n = read(s.in_fd, buf, sizeof(buf));
	cr_expect(n < 0 && errno == EAGAIN, "read gave %zd (%s)", n, strerror(errno));
	sink_close(&s);
	cr_expect_eq(s.out_fd, -1);
	cr_expect_eq(s.pty_slave_fd, -1);
}

Test(sink, socket_relays_one_client_at_a_time)
{
	_cleanup_free_ char *dir = temp_dir(), *path = NULL;
	Cloister__SerialConfig cfg;
	struct sink s = SINK_INIT;
	struct stat st;
	char err[256] = "", buf[16];
	int a, b;

	cr_assert_gt(asprintf(&path, "%s/serial.sock", dir), 0);
	cfg = sink_config(CLOISTER__SERIAL_MODE__SERIAL_SOCKET, path);
	cr_assert_eq(sink_open(&cfg, false, &s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(lstat(path, &st), 0);
	cr_expect(S_ISSOCK(st.st_mode));
	cr_expect_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
	cr_expect(fcntl(s.out_fd, F_GETFL) & O_NONBLOCK);

	a = connect_to(path);
	usleep(100 * 1000);	/* the relay accepts before output comes */
	write_all(s.out_fd, "hello");
	read_exactly(a, buf, 5);
	cr_expect_eq(memcmp(buf, "hello", 5), 0);
	write_all(a, "typed");
	read_exactly(s.in_fd, buf, 5);
	cr_expect_eq(memcmp(buf, "typed", 5), 0);

	/* A second client while the first is there is hung up on. */
	b = connect_to(path);
	{
		struct pollfd p = { .fd = b, .events = POLLIN };

		cr_assert_eq(poll(&p, 1, 5000), 1);
		cr_expect_eq(read(b, buf, sizeof(buf)), 0);
	}
	close(b);

	/* Output while nobody is connected is dropped; the next client sees what follows. */
	close(a);
	usleep(100 * 1000);
	write_all(s.out_fd, "lost");
	usleep(100 * 1000);
	a = connect_to(path);
	usleep(100 * 1000);
	write_all(s.out_fd, "again");
	read_exactly(a, buf, 5);
	cr_expect_eq(memcmp(buf, "again", 5), 0);
	write_all(a, "more");
	read_exactly(s.in_fd, buf, 4);
	cr_expect_eq(memcmp(buf, "more", 4), 0);
	close(a);

	sink_close(&s);
	cr_expect_eq(lstat(path, &st), -1, "the socket is removed");
	rmdir(dir);
}

Test(sink, socket_paths_that_are_refused_or_reclaimed)
{
	_cleanup_free_ char *dir = temp_dir(), *file = NULL, *stale = NULL;
	Cloister__SerialConfig cfg;
	struct sink s = SINK_INIT, busy = SINK_INIT;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	char err[256] = "";
	int fd;

	cr_assert_gt(asprintf(&file, "%s/plain", dir), 0);
	cr_assert_gt(asprintf(&stale, "%s/stale.sock", dir), 0);
	fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	cfg = sink_config(CLOISTER__SERIAL_MODE__SERIAL_SOCKET, file);
	cr_expect_eq(sink_open(&cfg, false, &s, err, sizeof(err)), -EEXIST);
	cr_expect(strstr(err, "not a socket"), "%s", err);
	cr_expect_eq(lstat(file, &st), 0, "a file that is not a socket stays");
	cr_expect_eq(s.out_fd, -1, "ret written on failure");

	cfg = sink_config(CLOISTER__SERIAL_MODE__SERIAL_SOCKET, "relative.sock");
	cr_expect_eq(sink_open(&cfg, false, &s, err, sizeof(err)), -EINVAL);

	/* A socket nobody listens on, as a killed cloister leaves it, is taken over. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", stale);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	cfg = sink_config(CLOISTER__SERIAL_MODE__SERIAL_SOCKET, stale);
	cr_assert_eq(sink_open(&cfg, false, &s, err, sizeof(err)), 0, "%s", err);
	/* One that is listened on belongs to someone else. */
	cr_expect_eq(sink_open(&cfg, false, &busy, err, sizeof(err)), -EADDRINUSE);
	cr_expect_eq(lstat(stale, &st), 0, "the live one stays");
	sink_close(&s);
	unlink(file);
	rmdir(dir);
}

Test(sink, modes_without_a_path)
{
	Cloister__SerialConfig off = sink_config(CLOISTER__SERIAL_MODE__SERIAL_OFF, NULL);
	Cloister__SerialConfig null = sink_config(CLOISTER__SERIAL_MODE__SERIAL_NULL, NULL);
	Cloister__SerialConfig bad = sink_config((Cloister__SerialMode)77, NULL);
	struct sink s = SINK_INIT;
	char err[256] = "";

	cr_assert_eq(sink_open(&off, false, &s, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(s.out_fd, -1);
	cr_expect_eq(s.in_fd, -1);
	cr_assert_eq(sink_open(&null, false, &s, err, sizeof(err)), 0, "%s", err);
	cr_expect_geq(s.out_fd, 0);
	cr_expect_eq(s.in_fd, -1, "/dev/null gives the guest no input");
	sink_close(&s);
	cr_expect_eq(sink_open(&bad, false, &s, err, sizeof(err)), -EINVAL);
}

/* ---- restore bindings and the other trust options ---- */

Test(options, restore_binds)
{
	const char *argv[] = { "cloister", "--restore", "source_url=file:///s",
			       "--restore-bind", "id=disk0,path=/img/a.raw",
			       "--restore-bind=id=net0,tap=tap7",
			       "--restore-bind", "id=serial,file=/var/log/a.serial",
			       "--restore-bind", "mode=pty,id=console0",
			       "--host-key", "/etc/cloister.key" };
	struct vm_options o;

	cr_assert_eq(parse(ARGC(argv), argv, &o), 0, "%s", err);
	cr_assert_eq(o.restore_binds.n, 4);
	cr_expect_str_eq(o.restore_binds.b[0].id, "disk0");
	cr_expect_str_eq(o.restore_binds.b[0].path, "/img/a.raw");
	cr_expect_str_eq(o.restore_binds.b[1].tap, "tap7");
	cr_expect(o.restore_binds.b[2].has_sink);
	cr_expect_eq(o.restore_binds.b[2].sink_mode, CLOISTER__SERIAL_MODE__SERIAL_FILE);
	cr_expect_str_eq(o.restore_binds.b[2].sink_path, "/var/log/a.serial");
	cr_expect_eq(o.restore_binds.b[3].sink_mode, CLOISTER__SERIAL_MODE__SERIAL_PTY);
	cr_expect_null(o.restore_binds.b[3].sink_path);
	cr_expect_str_eq(o.host_key, "/etc/cloister.key");
	options_free(&o);
}

Test(options, hostile_restore_binds)
{
	const char *no_restore[] = { "cloister", "--restore-bind", "id=disk0,path=/a" };
	const char *twice[] = { "cloister", "--restore", "source_url=file:///s", "--restore-bind",
				"id=disk0,path=/a", "--restore-bind", "id=disk0,path=/b" };
	const char *two_kinds[] = { "cloister", "--restore", "source_url=file:///s",
				    "--restore-bind", "id=disk0,path=/a,tap=t0" };
	const char *no_id[] = { "cloister", "--restore", "source_url=file:///s",
				"--restore-bind", "path=/a" };
	const char *relative[] = { "cloister", "--restore", "source_url=file:///s",
				   "--restore-bind", "id=disk0,path=a.img" };
	const char *bad_mode[] = { "cloister", "--restore", "source_url=file:///s",
				   "--restore-bind", "id=serial,mode=file" };
	const char *unknown[] = { "cloister", "--restore", "source_url=file:///s",
				  "--restore-bind", "id=net0,tap=t0,mac=52:54:00:00:00:01" };
	const char *repeated[] = { "cloister", "--restore", "source_url=file:///s",
				   "--restore-bind", "id=serial,file=/a,mode=null" };
	const char *ctl[] = { "cloister", "--restore", "source_url=file:///s",
			      "--restore-bind", "id=disk0,path=/a\nb" };

	expect_refused(ARGC(no_restore), no_restore, "needs --restore");
	expect_refused(ARGC(twice), twice, "bound twice");
	expect_refused(ARGC(two_kinds), two_kinds, "one kind only");
	expect_refused(ARGC(no_id), no_id, "needs id=");
	expect_refused(ARGC(relative), relative, "absolute");
	expect_refused(ARGC(bad_mode), bad_mode, "mode=file");
	expect_refused(ARGC(unknown), unknown, "unknown key mac");
	expect_refused(ARGC(repeated), repeated, "given twice");
	expect_refused(ARGC(ctl), ctl, "absolute");
}

Test(options, uid_range_and_trap)
{
	const char *dflt[] = { "cloister" };
	const char *range[] = { "cloister", "--sandbox-uid-range", "500000-500009", "--seccomp-trap" };
	const char *both[] = { "cloister", "--sandbox-uid-range", "500000-500009",
			       "--sandbox-user", "nobody" };
	const char *backwards[] = { "cloister", "--sandbox-uid-range", "9-1" };
	const char *root[] = { "cloister", "--sandbox-uid-range", "0-10" };
	const char *junk[] = { "cloister", "--sandbox-uid-range", "10" };
	struct vm_options o;

	cr_assert_eq(parse(ARGC(dflt), dflt, &o), 0, "%s", err);
	cr_expect_eq(o.uid_range_first, OPTIONS_UID_RANGE_FIRST);
	cr_expect_eq(o.uid_range_count, OPTIONS_UID_RANGE_COUNT);
	cr_expect(!o.seccomp_trap);
	options_free(&o);
	cr_assert_eq(parse(ARGC(range), range, &o), 0, "%s", err);
	cr_expect_eq(o.uid_range_first, 500000);
	cr_expect_eq(o.uid_range_count, 10);
	cr_expect(o.seccomp_trap);
	options_free(&o);
	expect_refused(ARGC(both), both, "mutually exclusive");
	expect_refused(ARGC(backwards), backwards, "FIRST-LAST");
	expect_refused(ARGC(root), root, "FIRST-LAST");
	expect_refused(ARGC(junk), junk, "FIRST-LAST");
}
