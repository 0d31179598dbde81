# SPDX-License-Identifier: MIT
#
# Relays and application servers of the matrix (sourced by matrix.sh):
# haproxy, socat, a python asyncio server, node, a Java server.  Each case
# runs with $mode, $d (its directory) and $port, and leaves $note (what it
# checked, or why it failed).

# echo_work: 8 connections of 2 MB each through the echo server at $port.
echo_work() {
	client $HELPER echo "$port" 8 2000000 11 >"$d/client.out" 2>&1 ||
		fail "$(tail -n 2 "$d/client.out" | tr '\n' ' ')" || return 1
	note=$(tail -n 1 "$d/client.out")
}

# socat in fork mode: a child per connection, echoing through a pipe.
case_socat() {
	start_server socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" PIPE || return 1
	with_sampler echo_work || return 1
	note="socat fork: $note"
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

# node's http module serving files from www.
case_node() {
	www
	$HELPER wwwfile "$d/www/small" 65536 2
	cat >"$d/server.js" <<'EOJ'
const http = require('http'), fs = require('fs'), path = require('path');
const [root, port] = process.argv.slice(2);
http.createServer((req, res) => {
	const f = path.join(root, path.basename(req.url));
	fs.stat(f, (err, st) => {
		if (err) { res.writeHead(404); res.end(); return; }
		res.writeHead(200, { 'Content-Length': st.size });
		fs.createReadStream(f).pipe(res);
	});
}).listen(Number(port), '127.0.0.1');
EOJ
	start_server node "$d/server.js" "$d/www" "$port" || return 1
	with_sampler http_work || return 1
	note="node $(node --version): $note"
}

# haproxy with the defaults of Debian's haproxy.cfg, in TCP mode with
# splice-auto, in front of a python HTTP server (started the same way as
# haproxy).  Without chroot, user and daemon: the row's registry and port.
case_haproxy() {
	www
	$HELPER wwwfile "$d/www/small" 65536 2
	# The backend runs under usmc-run only when every end does: in the
	# other modes haproxy's two sides are those of the mode.
	local bport=$port m=$mode
	[ "$mode" = smc ] || mode=tcp
	start_server python3 -m http.server --bind 127.0.0.1 --directory "$d/www" "$bport"
	local rc=$? backend=$spid
	mode=$m
	[ $rc = 0 ] || return 1
	# haproxy's listener has SO_REUSEPORT: its front connections stay TCP,
	# those to the backend are usmc's.
	mixed_why="the front listener has SO_REUSEPORT (0x03000005); haproxy to its backend in shared memory"
	port=$($HELPER port)
	cat >"$d/haproxy.cfg" <<EOC
global
	stats timeout 30s

defaults
	mode	tcp
	option	dontlognull
	option	splice-auto
	timeout connect 5000
	timeout client  50000
	timeout server  50000

frontend front
	bind 127.0.0.1:$port
	default_backend back

backend back
	server python 127.0.0.1:$bport
EOC
	start_server haproxy -db -f "$d/haproxy.cfg" || { kill "$backend"; return 1; }
	with_sampler http_work
	rc=$?
	kill "$backend" 2>/dev/null
	[ $rc = 0 ] || return 1
	note="haproxy $(haproxy -v | sed -n '1s/.*version \([^ ]*\).*/\1/p') tcp splice-auto: $note"
}
