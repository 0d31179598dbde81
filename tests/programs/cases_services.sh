# SPDX-License-Identifier: MIT
#
# A TLS tunnel, proxies and a database of the matrix (sourced by matrix.sh):
# stunnel, squid, varnish, mariadb, each started as its Debian package
# starts it, with the package's configuration; only ports, paths and what a
# throwaway instance needs differ.  A relay's backend runs under usmc-run
# only in smc (start_backend), so that in the other modes the relay's two
# sides are those of the mode.  Each case runs with $mode, $d (its
# directory) and $port, and leaves $note (what it checked, or why it failed).

# stunnel4 as the package runs it (stunnel4 FILE.conf; the package ships no
# tunnel, its sample's options): a TLS server tunnel in front of an echo
# service, and a TLS client tunnel (client = yes, verifyChain, checkHost) in
# front of it on the client's side.  The echo client's bytes cross three
# hops: to the client tunnel, the TLS hop, from the server tunnel to the
# service.  In the foreground, with the row's ports, pid files, certificate.
case_stunnel() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
		-addext subjectAltName=DNS:localhost -days 1 -keyout "$d/key.pem" -out "$d/cert.pem" \
		>/dev/null 2>&1 || fail "no certificate" || return 1
	local bport=$port tport backend tunnel
	start_backend $HELPER asyncio-echo "$bport" || return 1
	tport=$($HELPER port)
	cat >"$d/server.conf" <<EOC
foreground = yes
pid = $d/stunnel-server.pid
[echo]
accept = 127.0.0.1:$tport
connect = 127.0.0.1:$bport
cert = $d/cert.pem
key = $d/key.pem
EOC
	port=$tport
	start_server stunnel4 "$d/server.conf" || { stop_backends "$backend"; return 1; }
	tunnel=$spid
	port=$($HELPER port)
	cat >"$d/client.conf" <<EOC
foreground = yes
pid = $d/stunnel-client.pid
[echo]
client = yes
accept = 127.0.0.1:$port
connect = 127.0.0.1:$tport
verifyChain = yes
CAfile = $d/cert.pem
checkHost = localhost
OCSPaia = yes
EOC
	side=client start_server stunnel4 "$d/client.conf" || { stop_backends "$backend" "$tunnel"; return 1; }
	# The echo client is the client tunnel's own client: under usmc-run
	# only where every end is.
	local c=env
	[ "$mode" = smc ] && c=$RUN
	with_sampler timeout -k 2 60 $c $HELPER echo "$port" 8 2000000 11 >"$d/client.out" 2>&1
	local rc=$?
	stop_backends "$backend" "$tunnel"
	[ $rc = 0 ] || fail "$(tail -n 2 "$d/client.out" | tr '\n' ' ')" || return 1
	note="$(stunnel4 -version 2>&1 | sed -n 's/^\(stunnel [0-9.]*\) on .*/\1/p'), client and server tunnel: $(tail -n 1 "$d/client.out")"
}

# squid with Debian's squid.conf (and its conf.d), started as the package
# does (squid --foreground -z, then squid --foreground -sYC), its workers as
# proxy, in front of a python HTTP server; curl through it.  Only the port
# and the paths of the pid file, logs and core dumps are the row's.
case_squid() {
	local s=$d/squid bport backend
	http_backend || return 1
	mkdir -p "$s"
	chown proxy: "$s"
	{
		echo "pid_filename $s/squid.pid"
		echo "access_log daemon:$s/access.log squid"
		echo "cache_log $s/cache.log"
		sed -e "s|^http_port 3128|http_port $port|" -e "s|^coredump_dir .*|coredump_dir $s|" \
			/etc/squid/squid.conf
	} >"$s/squid.conf"
	# The master runs with proxy as its real user: anything of usmc's made
	# in proxy's name goes here, and proxy's counters are read too.
	chmod 1777 "$d/reg"
	row_users=proxy
	# The master, root, makes proxy its real user and execs the worker:
	# real and effective user differ, so the loader runs the worker in
	# secure-execution mode (AT_SECURE) and ignores LD_PRELOAD; the
	# master counts that exec (exec_secure), which server-only judges by.
	tcp_why="squid's worker is exec'd with real user proxy, effective root: the loader's secure mode ignores LD_PRELOAD"
	tcp_reasons=0x03010000
	squid --foreground -z -f "$s/squid.conf" >>"$d/server.log" 2>&1
	start_server squid --foreground -sYC -f "$s/squid.conf" || { stop_backends "$backend"; return 1; }
	http_via=http://127.0.0.1:$port origin_port=$bport
	relay_http_work || return 1
	note="$(squid -v | sed -n '1s/.*Version \([^ ]*\).*/squid \1/p'): $note"
}

# varnishd with the options of Debian's varnish.service (-j unix,user=vcache
# -F -a :PORT -T localhost:PORT -f default.vcl -S /etc/varnish/secret -s
# malloc,256m) and its default.vcl, in front of a python HTTP server; only
# the ports and the working directory (-n) are the row's.
case_varnish() {
	local v=$d/varnish bport backend
	http_backend || return 1
	mkdir -p "$v"
	sed -e "s|\.port = \"8080\";|.port = \"$bport\";|" /etc/varnish/default.vcl >"$v/default.vcl"
	chmod 1777 "$d/reg"
	row_users=vcache
	tcp_why="the cache process runs as vcache, its clients and backend as root: two users stay TCP (0x03010000)"
	tcp_reasons="0x03000002 0x03010000"
	start_server varnishd -j unix,user=vcache -F -a ":$port" -T "localhost:$($HELPER port)" \
		-f "$v/default.vcl" -S /etc/varnish/secret -s malloc,256m -n "$v/work" ||
		{ stop_backends "$backend"; return 1; }
	relay_http_work || return 1
	note="$(varnishd -V 2>&1 | sed -n '1s/.*(\(varnish-[^ ]*\).*/\1/p'): $note"
}

# mariadbd as Debian's mariadb.service runs it (as mysql, /etc/mysql/my.cnf
# and its mariadb.conf.d: bind-address 127.0.0.1, utf8mb4), on a data
# directory made by mariadb-install-db with the package's options; the
# command line gives the row's port, data directory, socket and pid file.
# A user for TCP is made through the socket (Debian's accounts are
# unix_socket only).  The mariadb client loads 20000 lines and reads them
# back in order, mariadb-dump carries the table into another database,
# CHECKSUM TABLE compares the two, and the copy is read back too.
case_mariadb() {
	local m=$d/db
	id mysql >/dev/null 2>&1 || fail "no mysql user" || return 1
	mkdir -p "$m"
	chown mysql: "$m" "$d/reg"
	chmod 777 "$d"
	as_user="runuser -u mysql --"
	$as_user mariadb-install-db --rpm --cross-bootstrap --user=mysql --disable-log-bin \
		--skip-test-db --datadir="$m/data" >"$d/install.log" 2>&1 ||
		fail "mariadb-install-db: $(tail -n 2 "$d/install.log")" || return 1
	# InnoDB's asynchronous I/O sets up an io_uring before the listener:
	# its connections are TCP from the start (0x03000003).
	tcp_why="mariadbd sets up io_uring (InnoDB's I/O): its sockets stay TCP (0x03000003)"
	tcp_reasons="0x03000003 0x03010000"
	start_server mariadbd --datadir="$m/data" --port="$port" --socket="$m/mysqld.sock" \
		--pid-file="$m/mysqld.pid" || return 1
	$as_user mariadb -S "$m/mysqld.sock" -e "CREATE USER matrix@'%' IDENTIFIED BY 'matrix';
		GRANT ALL ON *.* TO matrix@'%'" >"$d/client.log" 2>&1 ||
		fail "CREATE USER: $(tail -n 2 "$d/client.log")" || return 1
	$HELPER lines "$d/lines" 20000 9
	chmod a+r "$d/lines"
	with_sampler mariadb_work || return 1
	same_file "$d/lines" "$d/lines.out" "20000 lines read back" || return 1
	same_file "$d/lines" "$d/copy.out" "the copy read back" || return 1
	note="$(mariadbd --version | sed -n 's/.*Ver \([^ ]*\).*/mariadb \1/p'): $note"
}

mariadb_work() {
	local db=(mariadb -h 127.0.0.1 -P "$port" -u matrix -pmatrix --protocol=tcp)
	local back="SELECT CONCAT(LPAD(id, 6, '0'), ' ', line) FROM t ORDER BY id"
	client "${db[@]}" --local-infile=1 -e "CREATE DATABASE m; CREATE DATABASE m2;
		CREATE TABLE m.t (id INT PRIMARY KEY, line TEXT);
		LOAD DATA LOCAL INFILE '$d/lines' INTO TABLE m.t FIELDS TERMINATED BY ' '" \
		>"$d/client.log" 2>&1 || fail "mariadb LOAD DATA: $(tail -n 2 "$d/client.log")" || return 1
	client "${db[@]}" -N -B -r -e "$back" m >"$d/lines.out" 2>"$d/client.log" ||
		fail "mariadb SELECT: $(tail -n 2 "$d/client.log")" || return 1
	client mariadb-dump -h 127.0.0.1 -P "$port" -u matrix -pmatrix --protocol=tcp m t \
		>"$d/dump.sql" 2>"$d/client.log" || fail "mariadb-dump: $(tail -n 2 "$d/client.log")" || return 1
	client "${db[@]}" m2 <"$d/dump.sql" >"$d/client.log" 2>&1 ||
		fail "mariadb < dump: $(tail -n 2 "$d/client.log")" || return 1
	client "${db[@]}" -N -B -r -e "$back" m2 >"$d/copy.out" 2>"$d/client.log" ||
		fail "mariadb SELECT copy: $(tail -n 2 "$d/client.log")" || return 1
	client "${db[@]}" -N -B -e "CHECKSUM TABLE m.t, m2.t" >"$d/checksum.out" 2>"$d/client.log" ||
		fail "CHECKSUM TABLE: $(tail -n 2 "$d/client.log")" || return 1
	local a b
	a=$(sed -n '1s/.*\t//p' "$d/checksum.out")
	b=$(sed -n '2s/.*\t//p' "$d/checksum.out")
	[ -n "$a" ] && [ "$a" != NULL ] && [ "$a" = "$b" ] ||
		fail "CHECKSUM TABLE: $(tr '\n\t' '  ' <"$d/checksum.out")" || return 1
	note="LOAD DATA of 20000 lines and SELECT back, mariadb-dump into a copy: CHECKSUM TABLE $a both, sha256 equal"
}
