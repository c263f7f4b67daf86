#!/usr/bin/env bash
# Installs what building and testing rtcio-gateway needs on Debian 12, and
# nothing that is already there. Safe to run repeatedly.
#   - a Rust toolchain (rustup, stable) if cargo is missing
#   - Node.js + npm (socket.io-client test suite) if node is missing
#   - GStreamer 1.22 (headers for the Rust bindings, and the plugins that
#     encode, packetize, depacketize and mux media)
#   - ffmpeg (tests check recordings and relays with ffprobe/ffmpeg),
#     gst-discoverer (gstreamer1.0-plugins-base-apps), and nginx with the RTMP
#     module (the relay tests' RTMP server, started by scripts/rtmp-server.sh)
#   - Chromium (the browser suite drives it with playwright-core)
#   - what tests/deploy.rs checks deploy/ with: promtool (prometheus),
#     systemd-analyze and systemd-sysusers (systemd), PyYAML for
#     /usr/bin/python3 (python3-yaml). The prometheus package also ships the
#     Prometheus server as a service, which a machine booted with systemd
#     starts (systemctl disable --now prometheus if you do not want it).
#   - the npm packages of tests/node and tests/browser (from package-lock.json)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_packages=()
command -v curl >/dev/null || apt_packages+=(curl ca-certificates)
command -v cc >/dev/null || apt_packages+=(build-essential)
command -v node >/dev/null || apt_packages+=(nodejs)
command -v npm >/dev/null || apt_packages+=(npm)
for pkg in pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
    gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-plugins-base-apps gstreamer1.0-x fonts-dejavu-core \
    ffmpeg nginx-light libnginx-mod-rtmp chromium \
    prometheus systemd python3-yaml; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || apt_packages+=("$pkg")
done

if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${apt_packages[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"
fi

if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "install-deps: installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

if [ ! -d tests/node/node_modules/socket.io-client ]; then
  echo "install-deps: npm ci in tests/node"
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "install-deps: npm ci in tests/browser"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
