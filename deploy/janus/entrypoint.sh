#!/bin/sh
# Writes janus.jcfg with the token secret from the environment (Janus reads
# token_auth_secret from its configuration only), then runs Janus.
set -eu
: "${JANUS_TOKEN_AUTH_SECRET:?set JANUS_TOKEN_AUTH_SECRET to crab's --sfu-secret}"
case "$JANUS_TOKEN_AUTH_SECRET" in
  *'"'*|*'\'*) echo "JANUS_TOKEN_AUTH_SECRET may not hold quotes or backslashes" >&2; exit 2 ;;
esac
conf=/tmp/janus-conf
mkdir -p "$conf"
cp /opt/janus/janus.plugin.videoroom.jcfg /opt/janus/janus.transport.http.jcfg "$conf/"
sed "s|@TOKEN_AUTH_SECRET@|$JANUS_TOKEN_AUTH_SECRET|" /opt/janus/janus.jcfg > "$conf/janus.jcfg"
set -- -C "$conf/janus.jcfg" -F "$conf" -o
if [ -n "${JANUS_PUBLIC_IP:-}" ]; then
  set -- "$@" --nat-1-1="$JANUS_PUBLIC_IP" --keep-private-host
fi
exec janus "$@"
