"""Runs a process on a lab host and records what it read (/proc/<pid>/io) and how long it ran.

  python3 iowrap.py [args...]           as ansible_python_interpreter: runs /usr/bin/python3 [args...]
  python3 iowrap.py --cmd PROG [args]   runs PROG

Each run appends one JSON line to /var/tmp/seedops-bench/io.jsonl: argv, seconds, rchar (bytes
read through read(2) and friends, sockets included), read_bytes (bytes fetched from storage).
Must run as root to read the child's io counters.
"""

import json
import os
import sys
import time

LOG = "/var/tmp/seedops-bench/io.jsonl"


def main():
    args = sys.argv[1:]
    argv = args[1:] if args[:1] == ["--cmd"] else ["/usr/bin/python3"] + args
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    seconds = time.monotonic() - started
    with open("/proc/%d/io" % pid) as f:
        counters = dict(line.split(": ", 1) for line in f.read().splitlines())
    _pid, status = os.waitpid(pid, 0)
    with open(LOG, "a") as f:
        f.write(json.dumps({"argv": argv[0] if args[:1] == ["--cmd"] else "python3", "seconds": round(seconds, 3),
                            "rchar": int(counters["rchar"]), "read_bytes": int(counters["read_bytes"])}) + "\n")
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
