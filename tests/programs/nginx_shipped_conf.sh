# SPDX-License-Identifier: MIT
#
# nginx_shipped_conf DIR DAEMON SERVER: writes DIR/nginx.conf in the shape of
# Debian's /etc/nginx/nginx.conf (a master and `worker_processes auto`
# workers as www-data, sendfile on, tcp_nopush on, gzip), `daemon DAEMON`,
# its pid, logs and temporary paths in DIR, and SERVER as its server
# block.  `env USMC_REGISTRY_DIR` keeps the test's registry: nginx clears
# its workers' environment, and usmc reads the variable after it did.
nginx_shipped_conf() {
	local n=$1 daemon=$2 server=$3
	cat >"$n/nginx.conf" <<EOC
user www-data;
worker_processes auto;
daemon $daemon;
env USMC_REGISTRY_DIR;
pid $n/nginx.pid;
error_log $n/error.log;
events {
	worker_connections 768;
}
http {
	sendfile on;
	tcp_nopush on;
	types_hash_max_size 2048;
	include /etc/nginx/mime.types;
	default_type application/octet-stream;
	access_log $n/access.log;
	gzip on;
	client_body_temp_path $n/body;
	proxy_temp_path $n/proxy;
	fastcgi_temp_path $n/fastcgi;
	uwsgi_temp_path $n/uwsgi;
	scgi_temp_path $n/scgi;
$server
}
EOC
}

# nginx_default_site PORT ROOT: the server block of Debian's
# sites-available/default (the default listen on IPv4 and IPv6, index,
# try_files), on PORT, serving ROOT.
nginx_default_site() {
	cat <<EOS
	server {
		listen $1 default_server;
		listen [::]:$1 default_server;
		root $2;
		index index.html index.htm;
		server_name _;
		location / {
			try_files \$uri \$uri/ =404;
		}
	}
EOS
}
