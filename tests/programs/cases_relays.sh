# SPDX-License-Identifier: MIT
#
# Relays and application servers of the matrix (sourced by matrix.sh):
# haproxy, socat (fork and single), a python asyncio server, node, a Java
# server, redis replication.  Each case runs with $mode, $d (its directory)
# and $port, and leaves $note (what it checked, or why it failed).

# start_backend CMD...: starts the server behind a relay on $port, under
# usmc-run only when every end is (smc): in the other modes the relay's two
# sides are those of the mode.  Sets backend, its process.
start_backend() {
	local m=$mode rc
	[ "$mode" = smc ] || mode=tcp
	start_server "$@"
	rc=$?
	mode=$m
	backend=$spid
	return $rc
}

# stop_backends PID...: ends the servers a case started before its last.
stop_backends() {
	local p
	for p in "$@"; do
		kill "$p" 2>/dev/null
	done
}

# http_backend: the files of http_work served by python's http.server on
# $port behind a relay (start_backend); sets bport to that port, and port
# to a fresh one for the relay.
http_backend() {
	www
	$HELPER wwwfile "$d/www/small" 65536 2
	bport=$port
	start_backend python3 -m http.server --bind 127.0.0.1 --directory "$d/www" "$bport" || return 1
	port=$($HELPER port)
}

# relay_http_work: http_work through the relay, then the backend ends.
relay_http_work() {
	with_sampler http_work
	local rc=$?
	stop_backends "$backend"
	return $rc
}

# echo_work [CONNS [BYTES]]: CONNS connections (8) of BYTES (2 MB) each,
# one after the other, through the echo server at $port.
echo_work() {
	client $HELPER echo "$port" "${1:-8}" "${2:-2000000}" 11 >"$d/client.out" 2>&1 ||
		fail "$(tail -n 2 "$d/client.out" | tr '\n' ' ')" || return 1
	note=$(tail -n 1 "$d/client.out")
}

# socat in fork mode: a child per connection, echoing through a pipe.
case_socat() {
	start_server socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" PIPE || return 1
	with_sampler echo_work || return 1
	note="socat fork: $note"
}

# socat in its single mode (no fork): it serves one connection, echoing
# through a pipe, and ends with it.  16 MB, as the fork row's 8 x 2 MB.
case_socat_single() {
	start_server socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" PIPE || return 1
	with_sampler echo_work 1 16000000 || return 1
	note="socat single: $note"
}

case_python_asyncio() {
	start_server $HELPER asyncio-echo "$port" || return 1
	with_sampler echo_work || return 1
	note="asyncio: $note"
}

# A Java echo server, a thread per connection (compiled with javac).
case_java() {
	mkdir -p "$d/java"
	cat >"$d/java/Echo.java" <<'EOJ'
import java.io.*;
import java.net.*;

public class Echo {
    public static void main(String[] args) throws IOException {
        ServerSocket ss = new ServerSocket(Integer.parseInt(args[0]), 50,
                                           InetAddress.getByName("127.0.0.1"));
        for (;;) {
            Socket s = ss.accept();
            new Thread(() -> {
                try (s) {
                    InputStream in = s.getInputStream();
                    OutputStream out = s.getOutputStream();
                    byte[] buf = new byte[65536];
                    int n;
                    while ((n = in.read(buf)) > 0)
                        out.write(buf, 0, n);
                } catch (IOException e) {
                    System.err.println(e);
                }
            }).start();
        }
    }
}
EOJ
	javac -d "$d/java" "$d/java/Echo.java" 2>"$d/javac.log" ||
		fail "javac: $(head -n 3 "$d/javac.log")" || return 1
	start_server java -cp "$d/java" Echo "$port" || return 1
	with_sampler echo_work || return 1
	note="java threads: $note"
}

# node's http module serving files from www: the server both node rows run,
# in one process, or (NODE_WORKERS) in a cluster of that many workers.
node_server_js() {
	cat <<'EOJ'
const cluster = require('cluster'), http = require('http'), fs = require('fs'), path = require('path');
const [root, port, workers] = process.argv.slice(2);
if (workers && cluster.isPrimary) {
	for (let i = 0; i < Number(workers); i++) cluster.fork();
} else {
	http.createServer((req, res) => {
		const f = path.join(root, path.basename(req.url));
		fs.stat(f, (err, st) => {
			if (err) { res.writeHead(404); res.end(); return; }
			res.writeHead(200, { 'Content-Length': st.size });
			fs.createReadStream(f).pipe(res);
		});
	}).listen(Number(port), '127.0.0.1');
}
EOJ
}

case_node() {
	www
	$HELPER wwwfile "$d/www/small" 65536 2
	node_server_js >"$d/server.js"
	start_server node "$d/server.js" "$d/www" "$port" || return 1
	with_sampler http_work || return 1
	note="node $(node --version): $note"
}

# Node.js's cluster as its documentation starts it: the primary forks two
# workers and, by its default scheduling on Linux (round-robin), accepts
# every connection itself and hands it to a worker with SCM_RIGHTS.  The
# workers know nothing of the rings: each connection is declined before
# its first use and goes on as TCP, every request answered.
case_node_cluster() {
	www
	$HELPER wwwfile "$d/www/small" 65536 2
	node_server_js >"$d/server.js"
	tcp_why="the cluster's primary hands each connection to a worker (SCM_RIGHTS): declined before its first use, so TCP (0x03000008); a client it declined proposes no more there (0x03010000 at the server)"
	tcp_reasons="0x03000008 0x03010000"
	start_server node "$d/server.js" "$d/www" "$port" 2 || return 1
	with_sampler http_work || return 1
	note="node $(node --version), a cluster of 2 workers: $note"
}

# An SO_REUSEPORT group of two processes (python's http.server, each
# with a listener of its own on the port), as Go and Rust servers make:
# the kernel spreads the connections over both.
case_python_reuseport() {
	www
	$HELPER wwwfile "$d/www/small" 65536 2
	start_server $HELPER reuseport-http "$d/www" "$port" 2 || return 1
	with_sampler http_work || return 1
	note="two python processes, SO_REUSEPORT: $note"
}

# haproxy as Debian ships it: /etc/haproxy/haproxy.cfg (its global section,
# and its defaults in `mode http`, with httplog, dontlognull, the timeouts
# and error files), started as haproxy.service starts it (`-Ws -f CONFIG
# -p PIDFILE -S MASTER_SOCKET`: a master in the foreground and a worker,
# chroot /var/lib/haproxy, as user haproxy; `daemon` is ignored in that
# mode), in front of a python HTTP server (started the same way as haproxy)
# that curl reaches through it in HTTP.  Only the row's files differ: the
# stats socket, pid file and master socket in the row's directory, and the
# frontend and backend appended for the row's ports.
case_haproxy() {
	local bport backend h=$d/haproxy
	mkdir -p "$h"
	http_backend || return 1
	{
		# A throwaway instance: its admin socket in the row's directory,
		# not the system's /run/haproxy (whose service may run too).
		sed "s|^\([[:space:]]*stats socket\) /run/haproxy/admin.sock|\1 $h/admin.sock|" \
			/etc/haproxy/haproxy.cfg
		cat <<EOC

frontend front
	bind 127.0.0.1:$port
	default_backend back

backend back
	# Added: the shipped file does not splice; the matrix's haproxy row
	# runs with kernel splicing where haproxy judges it worth it.
	option	splice-auto
	server python 127.0.0.1:$bport
EOC
	} >"$h/haproxy.cfg"
	grep -q "stats socket $h/admin.sock" "$h/haproxy.cfg" ||
		{ stop_backends "$backend"; fail "haproxy.cfg: no stats socket line to rewrite"; return 1; }
	# The worker, as haproxy, writes its registry and counters here.
	chmod 1777 "$d/reg"
	row_users=haproxy
	# The front connections are in shared memory; the back ones join user haproxy to root.
	mixed_why="the worker runs as user haproxy, the python backend as root: two users, so its back connections stay TCP (0x03000002)"
	tcp_reasons="0x03000002 0x03010000"
	start_server haproxy -Ws -f "$h/haproxy.cfg" -p "$h/haproxy.pid" -S "$h/master.sock" ||
		{ stop_backends "$backend"; return 1; }
	relay_http_work || return 1
	note="haproxy $(haproxy -v | sed -n '1s/.*version \([^ ]*\).*/\1/p') as shipped, mode http, splice-auto: $note"
}

# redis replication: a master (the server) and a replica started as a client
# of it (under usmc-run where clients are).  A 4 MiB value and 1000 keys
# before the replica starts travel in the full synchronization (Redis 7: a
# forked child writes the snapshot to the socket), 1000 more keys written
# while it starts; all are read back from the replica.
case_redis_replication() {
	# Without the 5 s wait for more replicas before a diskless sync.
	start_server redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
		--dir "$d" --protected-mode no --repl-diskless-sync-delay 0 || return 1
	$HELPER wwwfile "$d/raw" $((3 << 20)) 3
	base64 -w0 <"$d/raw" >"$d/value"
	client redis-cli -p "$port" -x SET blob <"$d/value" >"$d/set.out" 2>&1 &&
		grep -qx OK "$d/set.out" || fail "SET blob: $(cat "$d/set.out")" || return 1
	local i
	for i in $(seq 2000); do echo "SET key:$i value-$i-$RANDOM$RANDOM"; done >"$d/cmds"
	head -n 1000 "$d/cmds" | client redis-cli -p "$port" >/dev/null 2>&1 || fail "SET 1000 keys" || return 1
	rport=$($HELPER port)
	with_sampler redis_replica_work || return 1
	note="replica: a 4 MiB value and 1000 keys before it started, 1000 while it started, all equal"
}

redis_replica_work() {
	timeout -k 2 60 $(wrap "$mode" client) redis-server --bind 127.0.0.1 --port "$rport" --save "" \
		--appendonly no --dir "$d" --protected-mode no --replicaof 127.0.0.1 "$port" \
		--dbfilename replica.rdb >"$d/replica.log" 2>&1 &
	local r=$!
	pids+=("$r")
	tail -n +1001 "$d/cmds" | client redis-cli -p "$port" >/dev/null 2>&1 || fail "SET 1000 more keys" || return 1
	# The replica serves the reads of it: under usmc-run only where servers are.
	local reader=env
	[ "$mode" = smc ] && reader=$RUN
	# Synchronized: the link is up, and the replica has the master's offset.
	local want= up= i
	for i in $(seq 300); do
		if timeout 10 $reader redis-cli -p "$rport" INFO replication 2>/dev/null |
			grep -q '^master_link_status:up'; then
			[ -n "$want" ] || want=$(client redis-cli -p "$port" INFO replication |
				tr -d '\r' | sed -n 's/^master_repl_offset:\([0-9]*\)$/\1/p')
			up=$(timeout 10 $reader redis-cli -p "$rport" INFO replication 2>/dev/null | tr -d '\r' |
				sed -n 's/^slave_repl_offset:\([0-9]*\)$/\1/p')
			[ -n "$up" ] && [ -n "$want" ] && [ "$up" -ge "$want" ] && break
		fi
		sleep 0.1
	done
	[ "$i" -lt 300 ] ||
		{ kill "$r"; fail "the replica reached offset ${up:-none} of ${want:-?} in 30 s: $(tail -n 2 "$d/replica.log" | tr '\n' ' ')"; return 1; }
	timeout -k 2 30 $reader redis-cli -p "$rport" --raw GET blob >"$d/get.out" 2>&1
	{ cat "$d/value"; echo; } >"$d/get.want"
	sed -n 's/^SET \([^ ]*\) .*/GET \1/p' "$d/cmds" | timeout -k 2 30 $reader redis-cli -p "$rport" >"$d/keys.out" 2>&1
	sed -n 's/^SET [^ ]* //p' "$d/cmds" >"$d/keys.want"
	# The link lives as long as the replica: until the sampler has seen it.
	sampler_looked
	kill "$r"
	same_file "$d/get.want" "$d/get.out" "GET blob from the replica" || return 1
	same_file "$d/keys.want" "$d/keys.out" "2000 GETs from the replica" || return 1
}
