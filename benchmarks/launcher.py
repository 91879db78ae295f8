"""A tiny process that starts the measured tools, so their peak RSS is their own.

Why: Linux keeps a process's ``ru_maxrss`` across ``execve`` as the maximum of the old and the
new memory map, and a forked child starts from its parent's. A tool started straight from the
benchmark (which holds the generated corpus, hundreds of MB) would report the benchmark's
peak, not its own. This launcher is started first, while small, imports nothing but ``os``,
``sys``, ``json`` and ``time``, and runs each command with ``posix_spawn`` + ``wait4``; the
floor it leaves in the numbers is measured (``true``) and reported.

Protocol: one JSON request per line on stdin ``{"argv", "env", "log"}``; one JSON answer per
line on stdout ``{"wall_s", "cpu_s", "max_rss_kib", "returncode"}``.
"""

import json
import os
import sys
import time


def serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, request["log"], flags, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        started = time.perf_counter()
        pid = os.posix_spawn(
            request["argv"][0], request["argv"], request["env"], file_actions=actions
        )
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - started
        answer = {
            "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "max_rss_kib": usage.ru_maxrss,
            "returncode": os.waitstatus_to_exitcode(status),
        }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
