# SPDX-License-Identifier: MIT
#
# Application stacks of the matrix (sourced by matrix.sh): nginx in front
# of php-fpm (LEMP), gunicorn.  Both are prefork servers: workers accept
# on a listener their master made.  Each case runs with $mode, $d (its
# directory) and $port, and leaves $note (what it checked, or why it
# failed).

# php-fpm with Debian's php-fpm.conf and pool www.conf (a root master,
# pm dynamic, workers as www-data) listening on TCP, as the pool's
# `listen = 127.0.0.1:9000` example has it, on a port of the row's;
# nginx in Debian's shape in front of it, passing every request to one
# script that reads out the file asked for.  Both hops in shared memory
# in smc: curl to nginx, nginx to php-fpm.
case_lemp() {
	local n=$d/nginx f=$d/fpm fport
	mkdir -p "$n" "$f"
	www
	$HELPER wwwfile "$d/www/small" 65536 2
	cat >"$d/www/serve.php" <<'EOC'
<?php
header('Content-Type: application/octet-stream');
readfile(__DIR__ . '/' . basename(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH)));
EOC
	chmod -R a+rX "$d/www"
	fport=$port
	sed -e "s|^pid = .*|pid = $f/php-fpm.pid|" -e "s|^error_log = .*|error_log = $f/error.log|" \
		-e "s|^include=.*|include=$f/www.conf|" /etc/php/8.2/fpm/php-fpm.conf >"$f/php-fpm.conf"
	sed -e "s|^listen = .*|listen = 127.0.0.1:$fport|" \
		/etc/php/8.2/fpm/pool.d/www.conf >"$f/www.conf"
	chmod 1777 "$d/reg"
	row_users=www-data
	start_backend php-fpm8.2 --nodaemonize --fpm-config "$f/php-fpm.conf" || return 1
	port=$($HELPER port)
	cat >"$n/nginx.conf" <<EOC
user www-data;
worker_processes auto;
daemon off;
env USMC_REGISTRY_DIR;
pid $n/nginx.pid;
error_log $n/error.log;
events {
	worker_connections 768;
}
http {
	sendfile on;
	tcp_nopush on;
	include /etc/nginx/mime.types;
	default_type application/octet-stream;
	access_log $n/access.log;
	client_body_temp_path $n/body;
	proxy_temp_path $n/proxy;
	fastcgi_temp_path $n/fastcgi;
	uwsgi_temp_path $n/uwsgi;
	scgi_temp_path $n/scgi;
	server {
		listen $port default_server;
		root $d/www;
		location / {
			include /etc/nginx/fastcgi_params;
			fastcgi_param SCRIPT_FILENAME $d/www/serve.php;
			fastcgi_pass 127.0.0.1:$fport;
		}
	}
}
EOC
	start_server nginx -p "$n" -c "$n/nginx.conf" -e "$n/error.log" || return 1
	relay_http_work || return 1
	note="nginx to php-fpm over TCP: $note"
}

# gunicorn with 4 sync workers (-w 4, its own defaults otherwise: Debian
# ships no configuration) serving a WSGI application that reads out the
# file asked for.
case_gunicorn() {
	www
	$HELPER wwwfile "$d/www/small" 65536 2
	cat >"$d/app.py" <<EOC
import os
ROOT = "$d/www"
def app(environ, start_response):
    path = os.path.join(ROOT, os.path.basename(environ["PATH_INFO"]))
    with open(path, "rb") as f:
        body = f.read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]
EOC
	start_server gunicorn -w 4 -b "127.0.0.1:$port" --chdir "$d" app:app || return 1
	with_sampler http_work || return 1
	note="gunicorn $(gunicorn --version 2>/dev/null | sed -n 's/.*version \([0-9.]*\).*/\1/p'), 4 workers: $note"
}
