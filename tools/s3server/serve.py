"""A real S3-compatible server for the tests (moto's server mode) on a free loopback port.

Runs with tools/s3server/.venv/bin/python (its own virtualenv: moto needs botocore, which caps
python-dateutil below the version constraints.txt pins). Prints `PORT <n>` once listening and
serves until SIGTERM or SIGINT.
"""

import signal
import sys
import threading

from moto.server import ThreadedMotoServer


def main() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(f"PORT {server.get_host_and_port()[1]}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
