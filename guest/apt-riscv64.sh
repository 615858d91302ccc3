# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash disable=SC2154
#
# Sourced by guest/linux/fetch.sh and bench/userspace-guest.sh: apt for
# Debian's riscv64 packages with every state and config directory private to
# $work, so the host's own package lists, pins and caches are neither used nor
# changed. The caller sets $work and $suite and defines die().

# Prints "URI KEYRING" of the machine's main Debian archive (not -security),
# from deb822 .sources files first, then one-line sources.list files.
debian_archive()
{
	local f

	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk '
			function flush() {
				if (uri != "" && uri !~ /security/ && key ~ /debian-archive-keyring/ && !found) {
					print uri, key; found = 1
				}
				uri = ""; key = ""
			}
			/^[ \t]*$/ { flush(); next }
			tolower($1) == "uris:" { uri = $2 }
			tolower($1) == "signed-by:" { key = $2 }
			END { flush() }' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk '$1 == "deb" && $2 !~ /^\[/ && $2 ~ /debian\/?$/ && $2 !~ /security/ {
			print $2, "/usr/share/keyrings/debian-archive-keyring.gpg"
		}' "$f"
	done
}

# $work/riscv64.sources for $suite (CLOISTER_DEBIAN_URI, or the machine's
# archive), and the private lists, cache and debs directories.
write_sources()
{
	local uri key

	if [ -n "${CLOISTER_DEBIAN_URI:-}" ]; then
		uri=$CLOISTER_DEBIAN_URI
		key=/usr/share/keyrings/debian-archive-keyring.gpg
	else
		read -r uri key < <(debian_archive | head -n 1) ||
			die "no Debian archive in /etc/apt; set CLOISTER_DEBIAN_URI"
	fi
	[ -r "$key" ] || die "keyring $key not found (package debian-archive-keyring)"
	mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
	printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nArchitectures: riscv64\nSigned-By: %s\n' \
		"$uri" "$suite" "$key" >"$work/riscv64.sources"
}

# apt-get or apt-cache (first argument) on the private state.
apt_riscv()
{
	local cmd=$1

	shift
	"$cmd" -q \
		-o Dir::Etc::SourceList="$work/riscv64.sources" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o Dir::Etc::Preferences=/dev/null \
		-o Dir::Etc::PreferencesParts=/dev/null \
		-o Dir::State::Lists="$work/lists" \
		-o Dir::State::Status=/dev/null \
		-o Dir::Cache="$work/cache" \
		-o APT::Architectures::=riscv64 \
		-o APT::Sandbox::User=root \
		"$@"
}
