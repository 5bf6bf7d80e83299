#!/bin/bash
cd /tmp/demo_clone
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
/usr/bin/time -f "install wall %e s" make install
echo "installed $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/usr/bin/time -f "demo wall %e s" make demo
echo "demo rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
