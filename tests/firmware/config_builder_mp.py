# MicroPython (unix port): builds station configs on request, for test_config_property.py.
# Each stdin line is "check <path>" (answered "C <number of defects>") or "build <path>"
# (answered "B <1 if the station runs on that very config> <slots>", or "X <exception>").
# Lines starting "E " are the station's own log lines.
import gc
import json
import sys

import bringup
import schema


class Link:
    def readinto(self, buf, timeout_ms):
        return 0

    def write(self, data):
        pass


while True:
    line = sys.stdin.readline()
    if not line:
        break
    cmd, path = line.split()
    try:
        if cmd == "check":
            with open(path) as f:
                print("C", len(schema.check(json.load(f))))
            continue
        st = bringup.build(path, None, Link(), 0)
        print("B", 1 if st.config_from == path else 0,
              len(st.sampler.slots))
        st.outbox.close()
    except Exception as e:
        print("X", repr(e))
    st = None
    gc.collect()
