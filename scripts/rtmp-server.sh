#!/usr/bin/env bash
# A throwaway nginx-rtmp server for tests and local relay experiments
# (Debian packages nginx-light + libnginx-mod-rtmp).
#   scripts/rtmp-server.sh start DIR PORT   # rtmp://127.0.0.1:PORT/live/<key>; prints the pid
#   scripts/rtmp-server.sh stop DIR
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?directory}
module=/usr/lib/nginx/modules/ngx_rtmp_module.so
case "$cmd" in
start)
  port=${3:?port}
  [ -f "$module" ] || { echo "missing $module: apt-get install nginx-light libnginx-mod-rtmp" >&2; exit 1; }
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<CONF
load_module $module;
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log info;
worker_processes 1;
events { worker_connections 256; }
rtmp {
  # The module's default access log is /var/log/nginx/access.log (root only).
  access_log $dir/access.log;
  server {
    listen 127.0.0.1:$port;
    chunk_size 4096;
    application live { live on; record off; }
  }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then cat "$dir/nginx.pid"; exit 0; fi
    sleep 0.05
  done
  echo "nginx-rtmp did not start on port $port; see $dir/error.log" >&2; exit 1 ;;
stop)
  if [ -f "$dir/nginx.pid" ]; then
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -s stop 2>/dev/null || kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
    for _ in $(seq 1 100); do [ -f "$dir/nginx.pid" ] || break; sleep 0.05; done
  fi ;;
*) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
