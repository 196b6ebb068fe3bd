#!/bin/sh
# Writes janus.jcfg with the token secret from the environment (Janus reads
# token_auth_secret from its configuration only), then runs Janus.
# JANUS_HOME and JANUS_CONF move it elsewhere (tests run it outside the image).
set -eu
: "${JANUS_TOKEN_AUTH_SECRET:?set JANUS_TOKEN_AUTH_SECRET to crab's --sfu-secret}"
case "$JANUS_TOKEN_AUTH_SECRET" in
  *'"'*|*'\'*|*'|'*|*'&'*)
    echo "JANUS_TOKEN_AUTH_SECRET may not hold quotes, backslashes, | or &" >&2
    exit 2 ;;
esac
home=${JANUS_HOME:-/opt/janus}
conf=${JANUS_CONF:-/tmp/janus-conf}
mkdir -p "$conf"
cp "$home/janus.plugin.videoroom.jcfg" "$home/janus.transport.http.jcfg" "$conf/"
sed -e "s|@TOKEN_AUTH_SECRET@|$JANUS_TOKEN_AUTH_SECRET|" \
    -e "s|/opt/janus|$home|g" -e "s|/tmp/janus-conf|$conf|g" \
    "$home/janus.jcfg" > "$conf/janus.jcfg"
set -- -C "$conf/janus.jcfg" -F "$conf" -o
if [ -n "${JANUS_PUBLIC_IP:-}" ]; then
  set -- "$@" --nat-1-1="$JANUS_PUBLIC_IP" --keep-private-host
fi
exec janus "$@"
