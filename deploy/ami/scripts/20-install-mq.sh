#!/bin/sh
# IBM MQ server from the tarball the builder provides (licensed software: never downloaded
# by the kit). The license was accepted with -var mq_accept_license=true.
set -eu
work=$(mktemp -d)
case "$MQ_SOURCE" in
  s3://*) aws s3 cp --only-show-errors "$MQ_SOURCE" "$work/mq.tar.gz" ;;
  *) mv /tmp/mq-local.tar.gz "$work/mq.tar.gz" ;;
esac
tar -xzf "$work/mq.tar.gz" -C "$work"
cd "$work"/MQServer
./mqlicense.sh -accept -text_only
# The server, its runtime, the client libraries mqguard's MQI view can use, Java for tools.
dnf -y install ./MQSeriesRuntime-*.rpm ./MQSeriesServer-*.rpm ./MQSeriesClient-*.rpm \
  ./MQSeriesJRE-*.rpm ./MQSeriesJava-*.rpm ./MQSeriesSamples-*.rpm ./MQSeriesGSKit-*.rpm
/opt/mqm/bin/setmqinst -i -p /opt/mqm
/opt/mqm/bin/dspmqver
cd / && rm -rf "$work"
# MQ's installer created the mqm user and group; mqguard and mq@.service run as mqm.
id mqm
