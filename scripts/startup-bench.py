#!/usr/bin/env python3
"""Start-up cost of privlink-restart: `--help`, and `check` on an empty cluster in the AWS
emulator (moto's server through tests/support/emulator.py, on a free loopback port).
Each command runs REPEAT times; prints a Markdown table of the median wall time and the
peak resident memory (the child's own ru_maxrss). Wall time on the emulator is the
client's start-up plus the emulator's answers, not AWS latency.

    python3 scripts/startup-bench.py [path/to/privlink-restart]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

REPEAT = 10
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(binary, args, env):
    """Wall seconds, peak RSS in MiB and the exit code of one run."""
    started = time.perf_counter()
    child = subprocess.Popen([binary, *args], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/privlink-restart")
    if not os.access(binary, os.X_OK):
        sys.exit(f"startup-bench: no binary at {binary}: cargo build first")
    import boto3  # installed with moto[server] (scripts/test installs it)

    emulator = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/support/emulator.py"), "--port", "0"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = emulator.stdout.readline().strip()
        port = line.removeprefix("PRIVLINK_EMULATOR_PORT=")
        if not port.isdigit():
            sys.exit(f"startup-bench: the emulator did not start: {line!r}")
        url = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as work:
            empty = os.path.join(work, "aws-config")
            open(empty, "w").close()
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update({
                "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "eu-west-1", "AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty,
                "AWS_EC2_METADATA_DISABLED": "true", "NO_PROXY": "127.0.0.1,localhost",
                "PRIVLINK_RESTART_STATE_DIR": os.path.join(work, "state"),
            })
            boto3.client("ecs", endpoint_url=url, region_name="eu-west-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing").create_cluster(clusterName="empty")
            print("| command | runs | median wall time | peak RSS | exit |")
            print("|---|---:|---:|---:|---:|")
            for args in (["--help"], ["check", "--cluster", "empty"]):
                runs = [run(binary, args, env) for _ in range(REPEAT)]
                walls = [r[0] for r in runs]
                rss = max(r[1] for r in runs)
                codes = sorted({r[2] for r in runs})
                print(f"| `privlink-restart {' '.join(args)}` | {REPEAT} | {statistics.median(walls) * 1000:.0f} ms "
                      f"| {rss:.1f} MiB | {', '.join(map(str, codes))} |")
    finally:
        emulator.stdin.close()
        emulator.wait(timeout=10)


if __name__ == "__main__":
    main()
