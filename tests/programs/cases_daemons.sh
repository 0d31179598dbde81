# SPDX-License-Identifier: MIT
#
# Daemons of the matrix in the configuration their Debian package ships
# (sourced by matrix.sh): sshd, apache2, postgresql, lighttpd, rsync, nginx,
# dnsmasq, git daemon.  Only paths, the port and what a throwaway instance
# needs differ from the package's files.  Each case runs with $mode, $d (its
# directory) and $port, and leaves $note (what it checked, or why it failed).

# sshd with Debian's sshd_config (privilege separation, the seccomp sandbox
# of the pre-authentication child, PAM), a generated host key and a key for
# root in the row's directory; ssh runs a command on 20 MB, scp copies it
# there and back.
case_sshd() {
	local s=$d/ssh
	mkdir -p "$s" /run/sshd
	chmod 700 "$s"
	ssh-keygen -q -t ed25519 -N '' -f "$s/host" && ssh-keygen -q -t ed25519 -N '' -f "$s/id" ||
		fail "ssh-keygen failed" || return 1
	cp "$s/id.pub" "$s/authorized_keys"
	# sshd takes the first value it reads of an option: these come first.
	{
		echo "ListenAddress 127.0.0.1"
		echo "HostKey $s/host"
		echo "PidFile $s/sshd.pid"
		echo "AuthorizedKeysFile $s/authorized_keys"
		echo "PermitRootLogin prohibit-password"
		# The keys live under /tmp, which is writable by all.
		echo "StrictModes no"
		cat /etc/ssh/sshd_config
	} >"$s/sshd_config"
	start_server "$(command -v sshd)" -D -e -f "$s/sshd_config" -p "$port" || return 1
	$HELPER wwwfile "$d/up" 20000000 7
	sshopt=(-i "$s/id" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
		-o BatchMode=yes -o LogLevel=ERROR)
	with_sampler ssh_work || return 1
	local want
	want=$(sha256sum <"$d/up" | cut -d' ' -f1)
	[ "$(cut -d' ' -f1 "$d/sum")" = "$want" ] ||
		fail "ssh sha256sum: $(head -c 100 "$d/sum"), $want expected" || return 1
	same_file "$d/up" "$d/up.there" "scp up" || return 1
	same_file "$d/up" "$d/down" "scp down" || return 1
	note="ssh sha256sum <20 MB, scp 20 MB up and down, sha256 equal"
}

ssh_work() {
	client ssh "${sshopt[@]}" -p "$port" root@127.0.0.1 sha256sum <"$d/up" >"$d/sum" 2>"$d/client.log" ||
		fail "ssh: exit $? $(tail -n 2 "$d/client.log" | tr '\n' ' ')" || return 1
	client scp "${sshopt[@]}" -P "$port" "$d/up" "root@127.0.0.1:$d/up.there" 2>"$d/client.log" ||
		fail "scp up: exit $? $(tail -n 2 "$d/client.log" | tr '\n' ' ')" || return 1
	client scp "${sshopt[@]}" -P "$port" "root@127.0.0.1:$d/up.there" "$d/down" 2>"$d/client.log" ||
		fail "scp down: exit $? $(tail -n 2 "$d/client.log" | tr '\n' ' ')" || return 1
}

# apache2 with Debian's apache2.conf, its enabled modules and configuration
# (AcceptFilter http data, the compiled-in default on Linux), the MPM given,
# workers as www-data; a temp ServerRoot with the row's port and document
# root.  Three GETs of 16 MiB on one connection, then 20 connections of one
# GET each.
apache_row() {
	local a=$d/apache mpm=$1
	mkdir -p "$a/run" "$a/lock" "$a/log" "$a/sites-enabled" "$a/mods-enabled"
	cp /etc/apache2/apache2.conf /etc/apache2/envvars "$a/"
	ln -s /etc/apache2/mods-available "$a/mods-available"
	ln -s /etc/apache2/conf-enabled "$a/conf-enabled"
	cp -P /etc/apache2/mods-enabled/* "$a/mods-enabled/"
	rm -f "$a"/mods-enabled/mpm_*
	ln -s "../mods-available/mpm_$mpm.load" "../mods-available/mpm_$mpm.conf" "$a/mods-enabled/" 2>/dev/null
	echo "Listen 127.0.0.1:$port" >"$a/ports.conf"
	cat >"$a/sites-enabled/000-default.conf" <<EOC
<VirtualHost *:$port>
	ServerAdmin webmaster@localhost
	DocumentRoot $d/www
	ErrorLog \${APACHE_LOG_DIR}/error.log
	CustomLog \${APACHE_LOG_DIR}/access.log combined
</VirtualHost>
<Directory $d/www/>
	Require all granted
</Directory>
EOC
	www
	$HELPER wwwfile "$d/www/small" 65536 2
	chmod -R a+rX "$d/www"
	# The workers, as www-data, write their registry and counters here.
	chmod 1777 "$d/reg"
	row_users=www-data
	start_server env APACHE_RUN_USER=www-data APACHE_RUN_GROUP=www-data \
		APACHE_PID_FILE="$a/run/apache2.pid" APACHE_RUN_DIR="$a/run" APACHE_LOCK_DIR="$a/lock" \
		APACHE_LOG_DIR="$a/log" LANG=C apache2 -d "$a" -f "$a/apache2.conf" -DFOREGROUND || return 1
	with_sampler http_work || return 1
	note="$(apachectl -v 2>/dev/null | sed -n 's/^Server version: //p') mpm_$mpm: $note"
}

# http_work: 3 GETs of www/blob on one connection, 20 connections of one
# GET of www/small each, every body checked.  Through the proxy $http_via
# to the server at $origin_port when a case sets them.  First one GET of
# www/blob held open (held_get) until the sampler has looked at it, which
# it sees whatever the load (the others may all end between two of its
# looks).
http_work() {
	local u=http://127.0.0.1:${origin_port:-$port} i args=()
	[ -n "$http_via" ] && args=(-x "$http_via")
	held_get sampler_looked "$d/slow" client curl -sS --fail --max-time 25 "${args[@]}" "$u/blob" \
		2>"$d/client.log" || fail "curl: $(cat "$d/client.log")" || return 1
	same_file "$d/www/blob" "$d/slow" "GET /blob held open" || return 1
	client curl -sS --fail --max-time 25 "${args[@]}" -o "$d/got1" "$u/blob" -o "$d/got2" "$u/blob" \
		-o "$d/got3" "$u/blob" 2>"$d/client.log" || fail "curl: $(cat "$d/client.log")" || return 1
	for i in 1 2 3; do
		same_file "$d/www/blob" "$d/got$i" "GET /blob #$i" || return 1
	done
	for i in $(seq 20); do
		args+=(-o "$d/small$i" "$u/small")
	done
	client curl -sS --fail --max-time 25 -H 'Connection: close' "${args[@]}" 2>"$d/client.log" ||
		fail "curl: $(cat "$d/client.log")" || return 1
	for i in $(seq 20); do
		same_file "$d/www/small" "$d/small$i" "GET /small #$i" || return 1
	done
	note="a GET of 16 MiB held open, 3 on one connection, 20 connections of 64 KiB, sha256 equal"
}

case_apache2_event() {
	apache_row event
}

case_apache2_prefork() {
	apache_row prefork
}

# postgresql as Debian runs it: a cluster made by pg_createcluster
# (postgresql-common: /etc/postgresql/VERSION/NAME with the package's
# postgresql.conf and pg_hba.conf, peer authentication on the Unix socket,
# scram-sha-256 over TCP, listen_addresses localhost, the socket in
# /var/run/postgresql), the row's name and port; started as
# postgresql@.service starts it (pg_ctlcluster as postgres), in the
# foreground; dropped with pg_dropcluster --stop whatever happened.  A
# password for postgres is set through the socket (peer), for the clients'
# TCP.  Server and clients run as postgres.  psql copies 20000 lines in and
# out (read back in order), pgbench -C makes a connection per transaction.
case_postgresql() {
	local ver name=usmc_matrix_${mode//-/_} rc
	ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n1)
	command -v pg_createcluster >/dev/null && [ -n "$ver" ] ||
		fail "no pg_createcluster or no postgresql version" || return 1
	id postgres >/dev/null 2>&1 || fail "no postgres user" || return 1
	# A cluster a run killed before it could drop it.
	[ -d "/etc/postgresql/$ver/$name" ] && pg_dropcluster --stop "$ver" "$name" >/dev/null 2>&1
	at_exit+=("pg_dropcluster --stop $ver $name >/dev/null 2>&1")
	pg_row "$ver" "$name"
	rc=$?
	# The server (pg_ctlcluster's postgres) stops with the cluster's drop.
	if ! pg_dropcluster --stop "$ver" "$name" >"$d/drop.log" 2>&1; then
		stop_server
		pg_dropcluster "$ver" "$name" >>"$d/drop.log" 2>&1 ||
			{ [ $rc = 0 ] && fail "pg_dropcluster $ver $name: $(tail -n 2 "$d/drop.log" | tr '\n' ' ')"; rc=1; }
	fi
	return $rc
}

pg_row() {
	local ver=$1 name=$2 i
	chown postgres: "$d/reg"
	pg_createcluster "$ver" "$name" -p "$port" >"$d/createcluster.log" 2>&1 ||
		fail "pg_createcluster: $(tail -n 2 "$d/createcluster.log" | tr '\n' ' ')" || return 1
	# pg_ctlcluster starts postgres with the environment of the cluster's
	# environment file alone (and LANG), which is where Debian has a
	# cluster's variables set: the row's registry goes there (as nginx's
	# `env USMC_REGISTRY_DIR`), and where the mode runs the server under
	# usmc-run, usmc-run's LD_PRELOAD (the preload adds itself back to an
	# exec's environment only to hand connections over; pg_ctlcluster has
	# none).
	{
		echo "USMC_REGISTRY_DIR = '$USMC_REGISTRY_DIR'"
		[ "$(wrap "$mode" server)" = env ] ||
			echo "LD_PRELOAD = '$("$RUN" env | sed -n 's/^LD_PRELOAD=//p')'"
	} >>"/etc/postgresql/$ver/$name/environment"
	as_user="runuser -u postgres --"
	start_server pg_ctlcluster --skip-systemctl-redirect --foreground "$ver" "$name" start || return 1
	for i in $(seq 100); do
		# Through the socket: a TCP probe would be a plain client of the row.
		pg_isready -q -p "$port" && break
		sleep 0.1
	done
	local -x PGPASSWORD
	PGPASSWORD=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
	runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" \
		-c "ALTER ROLE postgres PASSWORD '$PGPASSWORD'" >"$d/password.log" 2>&1 ||
		fail "psql (peer, socket): $(tail -n 2 "$d/password.log" | tr '\n' ' ')" || return 1
	$HELPER lines "$d/lines" 20000 9
	chmod a+r "$d/lines"
	chmod 777 "$d"
	with_sampler pg_work || return 1
	same_file "$d/lines" "$d/lines.out" "COPY in and out" || return 1
	note="pg_createcluster $ver $name, scram-sha-256: psql COPY of 20000 lines in and out, sha256 equal; $note"
}

pg_work() {
	local psql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres postgres)
	client "${psql[@]}" -c 'CREATE TABLE t (line text)' -c "\\copy t FROM '$d/lines'" \
		-c "\\copy (SELECT line FROM t ORDER BY line) TO '$d/lines.out'" >"$d/client.log" 2>&1 ||
		fail "psql: $(tail -n 2 "$d/client.log")" || return 1
	client pgbench -q -i -s 1 -h 127.0.0.1 -p "$port" -U postgres postgres >"$d/bench.log" 2>&1 ||
		fail "pgbench -i: $(tail -n 2 "$d/bench.log")" || return 1
	client pgbench -C -c 4 -j 2 -t 50 -S -h 127.0.0.1 -p "$port" -U postgres postgres \
		>"$d/bench.log" 2>&1 || fail "pgbench -C: $(tail -n 2 "$d/bench.log")" || return 1
	grep -q 'number of transactions actually processed: 200/200' "$d/bench.log" ||
		fail "pgbench -C: $(grep -E 'processed|failed' "$d/bench.log" | tr '\n' ' ')" || return 1
	note="pgbench -C -S: 200/200 transactions, a connection each"
}

# lighttpd with Debian's lighttpd.conf (its modules, the Debian
# include_shell of enabled configuration and mime types), the row's
# document root, port and files; as root it stays root.
case_lighttpd() {
	local l=$d/lighttpd
	mkdir -p "$l/log" "$l/cache" "$l/upload"
	sed -e "s|^server.document-root.*|server.document-root = \"$d/www\"|" \
		-e "s|^server.port.*|server.port = $port|" \
		-e "s|^server.errorlog.*|server.errorlog = \"$l/log/error.log\"|" \
		-e "s|^server.pid-file.*|server.pid-file = \"$l/lighttpd.pid\"|" \
		-e "s|^server.upload-dirs.*|server.upload-dirs = ( \"$l/upload\" )|" \
		-e "s|^server.username.*||" -e "s|^server.groupname.*||" \
		-e "s|/var/cache/lighttpd|$l/cache|" /etc/lighttpd/lighttpd.conf >"$l/lighttpd.conf"
	echo "server.bind = \"127.0.0.1\"" >>"$l/lighttpd.conf"
	www
	$HELPER wwwfile "$d/www/small" 65536 2
	chmod -R a+rX "$d/www"
	start_server lighttpd -D -f "$l/lighttpd.conf" || return 1
	with_sampler http_work || return 1
	note="$(lighttpd -v | sed -n '1s/ - .*//p'): $note"
}

# An rsync daemon (rsyncd.conf with one module), rsync pushing a tree of
# 200 files and 16 MiB, then pulling it into a fresh directory.
case_rsync() {
	mkdir -p "$d/mod" "$d/tree/a/b"
	$HELPER tree "$d/tree/a" 200
	$HELPER wwwfile "$d/tree/a/b/big" $((16 << 20)) 5
	cat >"$d/rsyncd.conf" <<EOC
pid file = $d/rsyncd.pid
use chroot = no
[mod]
	path = $d/mod
	read only = no
	uid = root
	gid = root
EOC
	start_server rsync --daemon --no-detach --address=127.0.0.1 --port="$port" \
		--config="$d/rsyncd.conf" || return 1
	with_sampler rsync_work || return 1
	diff -r "$d/tree" "$d/back" >"$d/diff.out" 2>&1 || fail "rsync: the tree pulled back differs: $(head -n 2 "$d/diff.out")" || return 1
	(cd "$d/tree" && find . -type f -exec sha256sum {} + | sort) >"$d/sums.want"
	(cd "$d/back" && find . -type f -exec sha256sum {} + | sort) >"$d/sums.got"
	same_file "$d/sums.want" "$d/sums.got" "sha256 of each file" || return 1
	note="rsync push and pull (--bwlimit=16m) of 201 files, 16.9 MB, sha256 of each equal"
}

# The pull is limited to 16 MB/s, about a second, so that the sampler sees
# its connection move data on a loaded machine too (at full speed it takes
# a fifth of a second, between two of the sampler's looks).
rsync_work() {
	client rsync -a "$d/tree/" "rsync://127.0.0.1:$port/mod/" >"$d/client.log" 2>&1 ||
		fail "rsync push: $(tail -n 2 "$d/client.log")" || return 1
	client rsync -a --bwlimit=16m "rsync://127.0.0.1:$port/mod/" "$d/back/" >"$d/client.log" 2>&1 ||
		fail "rsync pull: $(tail -n 2 "$d/client.log")" || return 1
}

# nginx in the shape of Debian's nginx.conf and sites-available/default
# (start_nginx, cases_basic.sh): a master and `worker_processes auto`
# workers as www-data, sendfile on, tcp_nopush, gzip, the default listen
# on IPv4 and IPv6; in the foreground, and told to keep USMC_REGISTRY_DIR,
# which it would clear.
case_nginx_shipped() {
	start_nginx || return 1
	with_sampler http_work || return 1
	note="nginx master and workers, sendfile on: $note"
}

# dnsmasq (dnsmasq-base; Debian's dnsmasq.conf sets nothing) answering from
# a hosts file of 200 names, asked over TCP by dig: a connection per query,
# each served by a child dnsmasq forks for it.  It stays root: its user
# would be another user than dig's.
case_dnsmasq() {
	local i
	for i in $(seq 200); do
		echo "10.$((i / 250)).$((i % 250)).$((i % 7 + 1)) host$i.matrix.test"
	done >"$d/hosts"
	cut -d' ' -f1 "$d/hosts" >"$d/want"
	sed 's/.* \(.*\)/\1 A/' "$d/hosts" >"$d/queries"
	start_server dnsmasq -k --conf-file=/dev/null --user=root --port="$port" \
		--listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
		--addn-hosts="$d/hosts" --pid-file="$d/dnsmasq.pid" || return 1
	with_sampler client dig +tcp +short +tries=1 +time=5 -p "$port" @127.0.0.1 -f "$d/queries" \
		>"$d/got" 2>"$d/client.log" || fail "dig: $(tail -n 2 "$d/client.log")" || return 1
	same_file "$d/want" "$d/got" "200 answers" || return 1
	note="dig +tcp: 200 queries, a connection each, answers equal"
}

# git daemon as Debian's git-daemon-run runs it (its /etc/sv/git-daemon/run:
# `git-daemon --verbose --reuseaddr --base-path=/var/lib /var/lib/git`, in
# the foreground; git-daemon-sysvinit passes the same options with
# --detach, --pid-file and --user), the row's base path and directory in
# place of /var/lib and /var/lib/git, and its port.  Without chpst's (or
# --user's) gitdaemon, a user that needs root and the package's postinst:
# root, like its clients.  As Debian's README.Debian has it, the
# repository is a bare one in the directory, exported by its
# git-daemon-export-ok (Debian's daemon has no --export-all).  The daemon
# forks a `git daemon --serve` per connection through exec, which forks
# and execs `git upload-pack` on descriptors 0 and 1: an exec chain.
# git clone over git:// of 3 commits, 13 MiB: HEAD, fsck and every file
# (sha256) equal.
case_git_daemon() {
	local src=$d/src base=$d/base i c head
	mkdir -p "$base/git"
	git init -q "$src" || fail "git init" || return 1
	for c in 1 2 3; do
		for i in $(seq 20); do
			$HELPER wwwfile "$src/text$i" $((i * 997 + c)) $((c * 100 + i))
			base64 -w 76 <"$src/text$i" >"$src/text$i.b64" && mv "$src/text$i.b64" "$src/text$i"
		done
		$HELPER wwwfile "$src/blob$c" $((4 << 20)) $((c + 20))
		git -C "$src" add -A && GIT_AUTHOR_NAME=usmc GIT_AUTHOR_EMAIL=usmc@localhost \
			GIT_COMMITTER_NAME=usmc GIT_COMMITTER_EMAIL=usmc@localhost \
			git -C "$src" commit -q -m "commit $c" || fail "git commit $c" || return 1
	done
	head=$(git -C "$src" rev-parse HEAD)
	git clone -q --bare --no-local "$src" "$base/git/repo.git" || fail "git clone --bare" || return 1
	touch "$base/git/repo.git/git-daemon-export-ok"
	start_server "$(git --exec-path)/git-daemon" --verbose --reuseaddr --port="$port" \
		--base-path="$base" "$base/git" || return 1
	with_sampler client git clone -q "git://127.0.0.1:$port/git/repo.git" "$d/clone" \
		>"$d/client.log" 2>&1 || fail "git clone: $(tail -n 2 "$d/client.log" | tr '\n' ' ')" || return 1
	[ "$(git -C "$d/clone" rev-parse HEAD)" = "$head" ] ||
		fail "git clone: HEAD $(git -C "$d/clone" rev-parse HEAD), $head expected" || return 1
	git -C "$d/clone" fsck --full --no-progress >"$d/fsck.log" 2>&1 ||
		fail "git fsck: $(head -n 2 "$d/fsck.log" | tr '\n' ' ')" || return 1
	(cd "$src" && find . -path ./.git -prune -o -type f -exec sha256sum {} + | sort) >"$d/sums.want"
	(cd "$d/clone" && find . -path ./.git -prune -o -type f -exec sha256sum {} + | sort) >"$d/sums.got"
	same_file "$d/sums.want" "$d/sums.got" "sha256 of each file" || return 1
	note="git $(git --version | sed 's/git version //') daemon: clone of 3 commits, $(($(du -sk "$base/git/repo.git/objects" | cut -f1) / 1024)) MiB of objects: HEAD, fsck and $(wc -l <"$d/sums.want") files equal"
}
