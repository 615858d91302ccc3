/* SPDX-License-Identifier: Apache-2.0 */
/* Command line of `cloister`, in Cloud Hypervisor's option syntax. */
#ifndef CLOISTER_OPTIONS_H
#define CLOISTER_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cloister.pb-c.h"
#include "restore_mode.h"

#define OPTIONS_CPUS_MAX 64u
#define OPTIONS_MEMORY_MIN (16ull << 20)
#define OPTIONS_MEMORY_MAX (64ull << 30)
#define OPTIONS_MEMORY_DEFAULT (512ull << 20)
#define OPTIONS_PAGE_SIZE 4096ull
/* Longer values are refused rather than truncated. */
#define OPTIONS_VALUE_MAX 4096u
/* What fits in sockaddr_un's sun_path with its terminating NUL. */
#define OPTIONS_SOCKET_PATH_MAX 108u

#define OPTIONS_MAX_DISKS 4
#define OPTIONS_MAX_NETS 2

struct disk_option {
	char *path;
	bool readonly;
	char *id;		/* "disk<N>" when not given */
};

struct net_option {
	char *tap;
	char *mac;		/* NULL: generated when the VM is created */
	char *id;		/* "net<N>" when not given */
};

#define OPTIONS_MAX_RESTORE_BINDS 8
/* Far above any distribution's system and user ids, and below the 32-bit overflow id. */
#define OPTIONS_UID_RANGE_FIRST 4000000u
#define OPTIONS_UID_RANGE_COUNT 100000u

/*
 * What the person restoring names for one device of a snapshot, instead of
 * the host resource the snapshot names: `--restore-bind id=ID,KEY=VALUE`
 * on the command line, an object of "devices" in vm.restore. Keys: path
 * (a disk image), tap (a NIC: the guest keeps its MAC), file, socket or mode (where the
 * serial port, id "serial", or a console sends its output).
 */
struct restore_bind {
	char *id;
	char *path;
	char *tap;
	/*
	 * vm.restore's "net_fds": the NIC gets this tap descriptor (borrowed from
	 * the request, never closed here) instead of opening tap by name; tap
	 * then holds the name the kernel gives the descriptor's interface.
	 */
	bool has_tap_fd;
	int tap_fd;
	bool has_sink;
	Cloister__SerialMode sink_mode;
	char *sink_path;	/* with SERIAL_FILE and SERIAL_SOCKET */
};

struct restore_binds {
	struct restore_bind b[OPTIONS_MAX_RESTORE_BINDS];
	size_t n;
};

struct vm_options {
	char *api_socket;
	unsigned cpus;			/* default 1 */
	uint64_t memory_size;		/* default 512 MiB */
	char *kernel, *initramfs, *cmdline;
	char *config_path;		/* --config: a VmConfig JSON file */
	char *event_monitor;		/* --event-monitor path=FILE|fd=N */
	Cloister__SerialMode serial_mode;	/* default SERIAL_TTY */
	char *serial_path;		/* only with SERIAL_FILE and SERIAL_SOCKET */
	bool rng;
	struct disk_option disks[OPTIONS_MAX_DISKS];
	size_t n_disks;
	struct net_option nets[OPTIONS_MAX_NETS];
	size_t n_nets;
	Cloister__SerialMode console_mode;	/* default SERIAL_OFF */
	char *console_path;		/* only with SERIAL_FILE */
	char *restore_source_url;
	bool restore_resume;
	enum restore_mode restore_mode;	/* memory_restore_mode, prefault=true: Copy */
	uid_t child_uid;
	gid_t child_gid;
	bool verbose;
	struct restore_binds restore_binds;	/* --restore-bind, for --restore */
	char *host_key;		/* --host-key: the key that seals snapshots' host bindings */
	char *restore_key_file;		/* --restore-key-file: an encrypted snapshot's key */
	char *restore_key_credential;	/* --restore-key-credential: the same, by credential */
	bool sandbox_user_given;	/* --sandbox-user: every VM's children run as that user */
	uid_t uid_range_first;	/* --sandbox-uid-range: one uid (and gid) per VM from it */
	uint32_t uid_range_count;
	bool seccomp_trap;	/* --seccomp-trap: report forbidden syscalls instead of killing */
};

/*
 * Parses argv into ret. Returns 0, 1 when --help or --version was printed
 * (the caller exits 0), or -EINVAL with a message in err. ret is written
 * only on 0 and must be released with options_free().
 */
int options_parse(int argc, char **argv, struct vm_options *ret, char *err, size_t errlen);
void options_free(struct vm_options *o);

/* "file:///abs/dir" -> "/abs/dir"; -EINVAL for other schemes, hosts, relative or empty paths. */
int parse_file_url(const char *url, char **ret_path);

/*
 * "source_url=file:///dir[,resume=true|false][,memory_restore_mode=Copy|OnDemand]
 * [,prefault=on|off]": *ret_mode is the mode named, RESTORE_MODE_DEFAULT if none;
 * prefault=on means Copy, and with OnDemand named too is -EINVAL.
 */
int parse_restore_spec(const char *spec, char **ret_source_url, bool *ret_resume,
		       enum restore_mode *ret_mode);

/*
 * One KEY=VALUE of a restore binding (also what vm.restore's "devices"
 * objects hold). -EINVAL with err set for an unknown or repeated key or a
 * bad value.
 */
int restore_bind_set(struct restore_bind *b, const char *key, const char *value, char *err,
		     size_t errlen);
/* A complete binding: an id and what it binds, of one kind only. */
int restore_bind_check(const struct restore_bind *b, char *err, size_t errlen);
/* "id=disk0,path=/img" added to binds; -EINVAL with err set. */
int parse_restore_bind(const char *spec, struct restore_binds *binds, char *err, size_t errlen);
void restore_binds_free(struct restore_binds *binds);

/* "512M", "1G", "16777216": bytes, with K/M/G (binary) suffixes. -ERANGE on overflow. */
int parse_size(const char *s, uint64_t *ret);

/* "true"/"on" and "false"/"off". */
int parse_bool(const char *s, bool *ret);

/* A device id: 1..32 letters, digits, '-' or '_' (ids end up in vm.json, ps and logs). */
bool options_device_id_ok(const char *id);

/* A unicast MAC address written XX:XX:XX:XX:XX:XX. */
bool options_mac_ok(const char *mac);

#endif
