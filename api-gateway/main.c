/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister: parses the options, serves the API socket, and supervises the
 * VM's processes until vmm.shutdown or a signal.
 */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "controller.h"
#include "event_monitor.h"
#include "http.h"
#include "log.h"
#include "notify.h"
#include "options.h"
#include "service.h"

#define TICK_MS 100

/*
 * With --serial tty on a terminal, keys go to the guest as typed: raw mode,
 * put back however cloister ends. Ctrl-A x quits (handled in vmm-core).
 */
static struct termios saved_termios;
static bool termios_saved;

static void terminal_restore(void)
{
	if (termios_saved)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
	termios_saved = false;
}

static void terminal_raw(const struct vm_options *o)
{
	struct termios raw;

	if (!o->kernel || o->serial_mode != CLOISTER__SERIAL_MODE__SERIAL_TTY || !isatty(STDIN_FILENO) ||
	    tcgetattr(STDIN_FILENO, &saved_termios) < 0)
		return;
	raw = saved_termios;
	cfmakeraw(&raw);
	/* Keep output processing so our own log lines still start at column 0. */
	raw.c_oflag |= OPOST;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0) {
		termios_saved = true;
		atexit(terminal_restore);
		fprintf(stderr, "cloister: the serial console has this terminal; Ctrl-A x quits\r\n");
	}
}

static int signals_block(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	/* Children are watched through pidfds; a dead child's socket must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	return -pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* Why main_loop() returned. */
enum loop_end { LOOP_QUIT, LOOP_SIGNAL, LOOP_VM_ENDED, LOOP_VM_FAILED };

static enum loop_end main_loop(struct controller *c, struct service *svc, int sigfd)
{
	char why[256];
	bool failed;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = sigfd, .events = POLLIN },
			{ .fd = controller_quit_fd(c), .events = POLLIN },
		};
		int r = poll(p, 2, TICK_MS);

		if (r < 0 && errno != EINTR)
			return LOOP_QUIT;
		if (p[0].revents) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == sizeof(si))
				log_info("signal %s: shutting down", strsignal((int)si.ssi_signo));
			return LOOP_SIGNAL;
		}
		if (p[1].revents) {
			log_info("vmm.shutdown: shutting down");
			return LOOP_QUIT;
		}
		controller_tick(c);
		service_tick(svc, c);
		notify_watchdog_tick();
		if (service_vm_ended(svc, c, &failed, why, sizeof(why))) {
			/* The controller logged why the VM failed, if it did. */
			log_info("the VM has %s: the service ends", failed ? "failed" : "shut down");
			return failed ? LOOP_VM_FAILED : LOOP_VM_ENDED;
		}
	}
}

/* --config FILE: create the VM the file describes, then boot it. */
static int boot_from_config(struct controller *c, const char *path, char *err, size_t errlen)
{
	struct json_object *cfg = json_object_from_file(path);
	int r;

	if (!cfg || !json_object_is_type(cfg, json_type_object)) {
		snprintf(err, errlen, "--config %s: not a readable JSON object (%s)", path,
			 json_util_get_last_err() ? json_util_get_last_err() : "not an object");
		json_object_put(cfg);
		return -EINVAL;
	}
	r = controller_create_json(c, cfg, err, errlen);
	json_object_put(cfg);
	if (r == 0)
		r = controller_run(c, VM_OP_BOOT, err, errlen);
	return r;
}

/* The VM the command line asks for, before the API socket appears. */
static int start_vm(struct controller *c, struct service *svc, const struct vm_options *o,
		    char *err, size_t errlen)
{
	int r;

	if (o->kernel)
		return controller_boot(c, err, errlen);
	/* A VM saved by the last stop comes back first; 1: nothing (usable) to restore. */
	if (o->config_path && (r = service_restore(svc, c, err, errlen)) != 1)
		return r;
	if (o->config_path)
		return boot_from_config(c, o->config_path, err, errlen);
	if (o->restore_source_url)
		return controller_restore(c, o->restore_source_url, o->restore_resume, err, errlen);
	return 0;
}

int main(int argc, char **argv)
{
	struct event_monitor *events = NULL;
	struct vm_options opts;
	struct controller *c = NULL;
	struct api_server *server = NULL;
	struct service *svc = NULL;
	struct notify_passed passed = { .api_fd = -1 };
	char err[512] = "";
	sigset_t set;
	int sigfd, r, status = 1, listen_fd = -1;
	enum loop_end end = LOOP_QUIT;

	log_set_tag("cloister");
	r = options_parse(argc, argv, &opts, err, sizeof(err));
	if (r == 1)
		return 0;
	if (r < 0) {
		fprintf(stderr, "cloister: %s\n", err);
		return 2;
	}
	if (opts.verbose)
		log_set_level(LOG_LVL_DEBUG);
	if (!opts.api_socket && !opts.kernel && !opts.restore_source_url && !opts.config_path) {
		fprintf(stderr, "cloister: nothing to do: give --api-socket, --kernel, --config or --restore\n");
		options_free(&opts);
		return 2;
	}
	if (signals_block(&set) < 0 || (sigfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
		log_error("cannot set up signal handling: %m");
		options_free(&opts);
		return 1;
	}
	if (opts.event_monitor && (r = event_monitor_open(opts.event_monitor, &events, err,
							     sizeof(err))) < 0) {
		fprintf(stderr, "cloister: %s\n", err);
		options_free(&opts);
		return 2;
	}
	event_monitor_emit(events, "vmm", "starting", NULL);
	terminal_raw(&opts);
	r = notify_listen_fds(opts.api_socket, &passed, err, sizeof(err));
	if (r == 0)
		r = service_new(&opts, &svc, err, sizeof(err));
	if (r == 0) {
		/* The API socket serves below; guest memory kept over a restart goes to the service. */
		listen_fd = passed.api_fd;
		passed.api_fd = -1;
		service_take_stored(svc, &passed);
	}
	notify_passed_close(&passed);
	if (r < 0) {
		log_error("%s", err);
		goto out;
	}
	r = controller_new(&opts, events, &c);
	if (r < 0)
		goto out;
	/* The socket appears once the VM the command line asks for exists. */
	r = start_vm(c, svc, &opts, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		notify_status("VM not started: %s", err);
		goto out;
	}
	if (listen_fd >= 0) {
		log_info("socket activation: the API socket %s was passed as fd %d", opts.api_socket,
			 listen_fd);
		r = api_server_start_fd(listen_fd, opts.api_socket, &controller_api_ops, c, &server);
		listen_fd = -1;
		if (r < 0) {
			log_error("cannot serve the passed API socket: %s", strerror(-r));
			goto out;
		}
	} else if (opts.api_socket) {
		r = api_server_start(opts.api_socket, &controller_api_ops, c, &server);
		if (r < 0) {
			log_error("cannot serve the API on %s: %s", opts.api_socket, strerror(-r));
			goto out;
		}
	}
	notify_ready(vm_state_name(controller_state(c, NULL, 0)));
	end = main_loop(c, svc, sigfd);
	status = end == LOOP_VM_FAILED;
	if (end == LOOP_SIGNAL && service_saves_on_stop(svc)) {
		/* No client may resume the VM between the pause and the snapshot. */
		api_server_stop(server);
		server = NULL;
	}
	if (end == LOOP_SIGNAL && service_stop(svc, c, err, sizeof(err)) < 0) {
		log_error("%s", err);
		status = 1;
	}
out:
	if (end != LOOP_SIGNAL)
		notify_stopping(status ? NULL : "VM stopping");
	/* An operation under way gives up; then stop answering, so nobody sees a half torn-down VM. */
	controller_cancel(c);
	api_server_stop(server);
	controller_free(c);
	event_monitor_emit(events, "vmm", "shutdown", NULL);
	event_monitor_close(events);
	terminal_restore();
	close(sigfd);
	if (listen_fd >= 0)
		close(listen_fd);
	service_free(svc);
	options_free(&opts);
	return status;
}
