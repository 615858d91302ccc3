#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs inside a systemd-nspawn container with systemd as PID 1 and the
# installed tree at /usr/local (see test_systemd.py). Each step prints
# "OK <step>" or "FAIL <step>: why" into $OUT; the exit status is the
# number of failed steps.
set -u
OUT=/cloister-out/results.txt
API=http://localhost/api/v1
: >"$OUT"
failed=0

ok() { echo "OK $1" >>"$OUT"; }
fail() {
	echo "FAIL $1: $2" >>"$OUT"
	failed=$((failed + 1))
}
info() { curl -sf --max-time 10 --unix-socket "/run/cloister/$1.sock" "$API/vm.info"; }
# The highest count hart 0 printed in FILE.
count() { grep -a '^hart 0 count ' "$1" 2>/dev/null | tail -n 1 | awk '{print $4}'; }
# Waits (up to 20 s) until hart 0 printed at least $2 in FILE $1.
wait_count() {
	for _ in $(seq 200); do
		c=$(count "$1")
		[ -n "$c" ] && [ "$c" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
# Waits (up to 10 s) until PATH $1 is gone.
wait_gone() {
	for _ in $(seq 100); do
		[ -e "$1" ] || return 0
		sleep 0.1
	done
	return 1
}
journal() { journalctl --no-pager -q "$@"; }
# journal_has UNIT PRIORITY PATTERN: waits (up to 5 s) for journald to have taken in a matching
# line (PRIORITY "" for any); the service's stream reaches the journal a little after the fact.
journal_has() {
	local prio=()
	[ -n "$2" ] && prio=(-p "$2")
	for _ in $(seq 50); do
		journal -u "$1" "${prio[@]}" -o cat | grep -q -- "$3" && return 0
		sleep 0.1
	done
	return 1
}

# -- readiness: start returns once READY=1 came; the API answers at once.
step=ready
if ! systemctl start cloister@plain; then
	fail $step "systemctl start cloister@plain failed: $(systemctl status cloister@plain --no-pager 2>&1 | tail -n 20)"
else
	st=$(systemctl show -P ActiveState cloister@plain)
	status=$(systemctl show -P StatusText cloister@plain)
	vm=$(info plain)
	if [ "$st" != active ]; then
		fail $step "ActiveState $st after start"
	elif [[ "$vm" != *'"state":"Running"'* && "$vm" != *'"state": "Running"'* ]]; then
		fail $step "vm.info right after start: $vm"
	elif [ "$status" != "VM Running" ]; then
		fail $step "StatusText '$status'"
	else
		ok $step
	fi
fi

# -- the processes' lines carry journal priorities and say who spoke.
step=journal
wait_count /var/log/cloister/plain.serial 2 || true
journal_has cloister@plain "" '^vmm\[[0-9]*\]: ' || true
lines=$(journal -u cloister@plain -o cat)
prio_info=$(journal -u cloister@plain -p info -o cat | wc -l)
prio_err=$(journal -u cloister@plain -p err -o cat | wc -l)
if ! grep -q '^cloister\[[0-9]*\]: info: ' <<<"$lines"; then
	fail $step "no gateway line: $(head -n 5 <<<"$lines")"
elif ! grep -q '^vmm\[[0-9]*\]: ' <<<"$lines"; then
	fail $step "no vmm line: $(head -n 20 <<<"$lines")"
elif grep -q 'guest code is interpreted' <<<"$lines"; then
	fail $step "the translator lost its code buffers under the unit's hardening"
elif grep -q '^<[0-7]>' <<<"$lines"; then
	fail $step "a priority prefix reached the journal's text"
elif [ "$prio_err" -ne 0 ] || [ "$prio_info" -eq 0 ]; then
	fail $step "priorities: $prio_err at err, $prio_info at info or above"
else
	ok $step
fi

# -- with WatchdogSec= set, the main loop pings: systemd's watchdog timestamp moves.
step=watchdog
mkdir -p /run/systemd/system/cloister@plain.service.d
printf '[Service]\nWatchdogSec=1s\n' >/run/systemd/system/cloister@plain.service.d/watchdog.conf
systemctl daemon-reload
systemctl restart cloister@plain
first=$(systemctl show -P WatchdogTimestampMonotonic cloister@plain)
moved=
for _ in $(seq 50); do
	now=$(systemctl show -P WatchdogTimestampMonotonic cloister@plain)
	if [ "$now" != "$first" ]; then
		moved=1
		break
	fi
	sleep 0.1
done
if [ -z "$moved" ]; then
	fail $step "no WATCHDOG=1 in 5 s (timestamp $first)"
elif ! journal_has cloister@plain "" 'systemd watchdog: every 500 ms'; then
	fail $step "the gateway did not see WATCHDOG_USEC"
elif [ "$(systemctl show -P ActiveState cloister@plain)" != active ]; then
	fail $step "not active"
else
	ok $step
fi
rm -r /run/systemd/system/cloister@plain.service.d
systemctl daemon-reload

# -- stop with no snapshot_on_stop: the service ends cleanly, nothing saved.
step=plain_stop
systemctl stop cloister@plain
res=$(systemctl show -P Result cloister@plain)
if [ "$res" != success ] || [ -e /var/lib/cloister/plain/snapshot ]; then
	fail $step "Result $res, $(ls /var/lib/cloister/plain 2>&1)"
else
	ok $step
fi

# -- vm.shutdown over the API (CH: back to Created) keeps the service up for a vm.boot.
step=vm_shutdown
systemctl start cloister@plain
put() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket /run/cloister/plain.sock \
		-X PUT "$API/$1"
}
down=$(put vm.shutdown)
status_down=$(systemctl show -P StatusText cloister@plain)
st_down=$(systemctl show -P ActiveState cloister@plain)
up=$(put vm.boot)
vm=$(info plain)
if [ "$down" != 204 ] || [ "$up" != 204 ]; then
	fail $step "vm.shutdown answered $down, vm.boot $up"
elif [ "$st_down" != active ] || [ "$status_down" != "VM Created" ]; then
	fail $step "after vm.shutdown: $st_down, '$status_down'"
elif [[ "$vm" != *'"state":"Running"'* && "$vm" != *'"state": "Running"'* ]]; then
	fail $step "after vm.boot: $vm"
elif [ "$(systemctl show -P StatusText cloister@plain)" != "VM Running" ]; then
	fail $step "StatusText after vm.boot: $(systemctl show -P StatusText cloister@plain)"
else
	ok $step
fi
systemctl stop cloister@plain

# -- snapshot on stop, restore on start: the guest's counter goes on.
step=snapshot_on_stop
serial=/var/log/cloister/web.serial
systemctl start cloister@web
if ! wait_count $serial 3; then
	fail $step "the guest did not count: $(tail -c 300 $serial 2>&1)"
else
	systemctl stop cloister@web
	before=$(count $serial)
	size=$(stat -c %s $serial)
	if [ ! -f /var/lib/cloister/web/snapshot/vm.json ]; then
		fail $step "no snapshot after stop: $(journal -u cloister@web -o cat | tail -n 20)"
	elif [ "$(systemctl show -P Result cloister@web)" != success ]; then
		fail $step "stop did not succeed: $(systemctl show -P Result cloister@web)"
	else
		ok $step
	fi
	step=restore_on_start
	systemctl start cloister@web
	wait_count $serial $((before + 2)) || true
	first=$(tail -c +$((size + 1)) $serial | grep -a '^hart 0 count ' | head -n 1 | awk '{print $4}')
	if [ "$(systemctl show -P ActiveState cloister@web)" != active ]; then
		fail $step "not active after start: $(journal -u cloister@web -o cat | tail -n 20)"
	elif ! wait_gone /var/lib/cloister/web/snapshot; then
		# OnDemand (the default): removed once every page is in, about a second.
		fail $step "the snapshot is still there after a restore that resumed and paged all in"
	elif [ "$first" != "$((before + 1))" ]; then
		fail $step "counted $before before the stop, then '$first'"
	elif ! journal_has cloister@web "" 'restoring the VM from'; then
		fail $step "the journal does not say the VM was restored"
	else
		ok $step
	fi
fi

# The counts hart 0 printed in FILE $1 from byte $2 on go up by one each: no restart from 1, no gap.
counts_consecutive() {
	tail -c +$(($2 + 1)) "$1" | grep -a '^hart 0 count ' | awk '{print $4}' |
		awk 'NR > 1 && $1 != prev + 1 { bad = 1 } { prev = $1 } END { exit bad }'
}
# Guest memory files anywhere in the state directory: a restart through the fd store writes none.
region_files() { find /var/lib/cloister/web -name 'memory-region-*' 2>/dev/null | wc -l; }

# -- restart keeps guest memory in the fd store: no region file, no copy, the count goes on.
step=restart_fdstore
if [ "$(systemctl show -P ActiveState cloister@web)" != active ]; then
	fail $step "cloister@web is not running before the restart"
else
	size=$(stat -c %s $serial)
	before=$(count $serial)
	mark=$(date '+%Y-%m-%d %H:%M:%S')
	# Anything written meanwhile would show: watch the state directory while the restart runs.
	( for _ in $(seq 100); do region_files; sleep 0.05; done ) >/tmp/regions-seen &
	watcher=$!
	systemctl restart cloister@web
	wait_count $serial $((before + 3)) || true
	kill $watcher 2>/dev/null
	wait $watcher 2>/dev/null
	seen=$(sort -n /tmp/regions-seen | tail -n 1)
	after=$(count $serial)
	lines=$(journal -u cloister@web --since "$mark" -o cat)
	if [ "$(systemctl show -P ActiveState cloister@web)" != active ]; then
		fail $step "not active after restart: $(tail -n 20 <<<"$lines")"
	elif ! grep -q 'restoring the VM from the fd store' <<<"$lines"; then
		fail $step "not restored from the fd store: $(grep -a -e warning -e error -e 'saving' <<<"$lines" | tail -n 10)"
	elif ! grep -q 'memory stays in the fd store' <<<"$lines"; then
		fail $step "snapshotd did not leave memory in the store"
	elif [ "${seen:-0}" -ne 0 ] || [ "$(region_files)" -ne 0 ]; then
		fail $step "memory region files appeared in the state directory ($seen seen)"
	elif [ -e /var/lib/cloister/web/snapshot-fdstore ] || [ -e /var/lib/cloister/web/snapshot ]; then
		fail $step "left behind: $(ls /var/lib/cloister/web)"
	elif [ -z "$after" ] || [ "$after" -lt $((before + 3)) ] || ! counts_consecutive $serial "$size"; then
		fail $step "the count did not go on: $before before, $after after, $(tail -c +$((size + 1)) $serial | grep -a count | head -n 5 | tr '\n' ' ')"
	elif grep -a -q 'pattern: BAD' $serial; then
		fail $step "guest memory changed across the restart"
	else
		ok $step
	fi
fi

# -- after a restart through the store, stop and start still go through the disk.
step=stop_after_restart
systemctl stop cloister@web
if [ ! -f /var/lib/cloister/web/snapshot/vm.json ] || [ "$(region_files)" -eq 0 ]; then
	fail $step "no disk snapshot after stop: $(ls -R /var/lib/cloister/web | head -n 20)"
elif [ -e /var/lib/cloister/web/snapshot-fdstore ]; then
	fail $step "a stop kept the VM in the fd store"
else
	size=$(stat -c %s $serial)
	before=$(count $serial)
	systemctl start cloister@web
	wait_count $serial $((before + 2)) || true
	if [ "$(systemctl show -P ActiveState cloister@web)" != active ]; then
		fail $step "not active after start"
	elif ! counts_consecutive $serial "$size" || [ "$(count $serial)" -le "$before" ]; then
		fail $step "the count did not go on from the disk snapshot"
	elif [ -e /var/lib/cloister/web/snapshot ]; then
		fail $step "the disk snapshot is still there after its restore"
	else
		ok $step
	fi
fi

# -- a restart whose vm.json is spoiled while the memory waits in the store: refused, logged,
# the store emptied and the VM boots afresh.
step=restart_fdstore_refused
mkdir -p /run/systemd/system/cloister@web.service.d
printf '[Service]\nExecStartPre=/bin/sh -c "if [ -f /var/lib/cloister/web/snapshot-fdstore/vm.json ]; then echo {} >/var/lib/cloister/web/snapshot-fdstore/vm.json; fi"\n' \
	>/run/systemd/system/cloister@web.service.d/spoil.conf
systemctl daemon-reload
before=$(count $serial)
mark=$(date '+%Y-%m-%d %H:%M:%S')
systemctl restart cloister@web
sleep 0.3
wait_count $serial 1 || true
lines=$(journal -u cloister@web --since "$mark" -o cat)
# A fresh boot counts from 1 again (into a serial file it starts afresh).
after=$(count $serial)
if [ "$(systemctl show -P ActiveState cloister@web)" != active ]; then
	fail $step "not active: $(tail -n 20 <<<"$lines")"
elif ! grep -q 'memory stays in the fd store' <<<"$lines"; then
	fail $step "the restart did not go through the fd store"
elif ! grep -q 'the VM kept in the fd store was refused' <<<"$lines"; then
	fail $step "no warning: $(grep -a -e warn -e error <<<"$lines" | tail -n 5)"
elif [ -z "$after" ] || [ "$after" -ge "$before" ]; then
	fail $step "the VM did not boot afresh: count $before before, $after after"
elif [ -e /var/lib/cloister/web/snapshot-fdstore ]; then
	fail $step "snapshot-fdstore left behind"
else
	ok $step
fi
rm -r /run/systemd/system/cloister@web.service.d
systemctl daemon-reload

# -- a refused snapshot: kept aside, the VM boots afresh, the journal says why.
step=refused_snapshot
systemctl stop cloister@web
if [ -f /var/lib/cloister/web/snapshot/vm.json ]; then
	echo '{"version": 99}' >/var/lib/cloister/web/snapshot/vm.json
	systemctl start cloister@web
	wait_count $serial 1 || true
	if [ "$(systemctl show -P ActiveState cloister@web)" != active ]; then
		fail $step "not active: $(journal -u cloister@web -o cat | tail -n 20)"
	elif [ ! -f /var/lib/cloister/web/snapshot.refused/vm.json ]; then
		fail $step "the refused snapshot was not kept aside"
	elif ! journal_has cloister@web warning 'was refused'; then
		fail $step "no warning saying why: $(journal -u cloister@web -o cat | tail -n 10)"
	elif ! journal_has cloister@web err '^snapshotd\[[0-9]*\]: error: '; then
		fail $step "snapshotd's error is not at priority err"
	elif ! first=$(grep -a -m 1 '^hart 0 count ' $serial | awk '{print $4}') || [ -z "$first" ] ||
		[ "$first" -ge 3 ]; then
		fail $step "the guest did not boot afresh: $(head -c 200 $serial)"
	else
		ok $step
	fi
	systemctl stop cloister@web
else
	fail $step "no snapshot to corrupt"
fi

# -- a VM that cannot boot: the start fails, status says why.
step=failed_start
systemctl start cloister@bad 2>/dev/null
st=$(systemctl status cloister@bad --no-pager -n 20 2>&1)
if ! systemctl is-failed -q cloister@bad; then
	fail $step "not failed: $st"
elif ! grep -q 'does-not-exist' <<<"$st"; then
	fail $step "status does not say why: $st"
elif [[ "$(systemctl show -P StatusText cloister@bad)" != "VM not started: payload.kernel /cloister-test/does-not-exist.elf"* ]]; then
	fail $step "StatusText: $(systemctl show -P StatusText cloister@bad)"
elif ! journal_has cloister@bad err 'does-not-exist'; then
	fail $step "journalctl -p err does not find the reason"
else
	ok $step
fi

# -- a VM whose vmm-core dies: the service fails, status says which process.
step=failed_running
systemctl start cloister@plain
vmm=$(pgrep -f 'cloister-vmm' | head -n 1)
if [ -z "$vmm" ]; then
	fail $step "no vmm process"
else
	kill -KILL "$vmm"
	for _ in $(seq 50); do
		systemctl is-active -q cloister@plain || break
		sleep 0.1
	done
	st=$(systemctl status cloister@plain --no-pager -n 20 2>&1)
	if ! systemctl is-failed -q cloister@plain; then
		fail $step "not failed: $st"
	elif ! grep -q 'SIGKILL' <<<"$st"; then
		fail $step "status does not say why: $st"
	elif [ "$(systemctl show -P StatusText cloister@plain)" != "VM Shutdown: vmm-core killed by SIGKILL" ]; then
		fail $step "StatusText: $(systemctl show -P StatusText cloister@plain)"
	else
		ok $step
	fi
fi
systemctl reset-failed 'cloister@*' 2>/dev/null

# -- socket activation: the first request starts the service.
step=socket
systemctl start cloister@web.socket
mode=$(stat -c %a /run/cloister/web.sock 2>&1)
reply=$(info web)
sleep 0.5
if [ "$mode" != 600 ]; then
	fail $step "socket mode $mode"
elif ! [[ "$reply" == *'"state":"Running"'* || "$reply" == *'"state": "Running"'* ]]; then
	fail $step "no answer: '$reply' $(journal -u cloister@web -o cat | tail -n 20)"
elif ! journal_has cloister@web "" 'was passed as fd 3'; then
	fail $step "answered, but not on the passed socket"
else
	ok $step
fi
systemctl stop cloister@web.socket cloister@web 2>/dev/null

journalctl --no-pager -o short-monotonic -u 'cloister@*' >/cloister-out/journal.txt 2>&1
exit $failed
