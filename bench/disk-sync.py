#!/usr/bin/env python3
"""How long this machine's disk takes to make a small write durable, with no service.

    bench/disk-sync.py [DIRECTORY] [CHUNK_BYTES] [SECONDS]

Writes a 1 GiB file of zeros in DIRECTORY (default: a new temporary folder, on the disk
the load scripts' SQLite files use), syncs it, then for SECONDS (default 60) overwrites
it CHUNK_BYTES at a time (default 4096, a SQLite page), each write followed by
`fdatasync`, with a 2 ms rest between rounds: what a database does to commit. Prints
the sync times' percentiles, how many took over 50 and over 100 ms, and the seconds
in which the longest sync took over 20 ms. The file is removed at the end.

A registration is answered once its commit is on the disk, on either engine; a sync
that stalls holds every registration committed in that moment, so the stalls this
prints set a floor under the p99 of bench/registration-load.sh on the same machine.
"""
import os
import sys
import tempfile
import time


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else tempfile.mkdtemp()
    chunk = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    path = os.path.join(directory, "disk-sync.bin")
    size = 1 << 30
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        zeros = b"\0" * (8 << 20)
        for offset in range(0, size, len(zeros)):
            os.pwrite(fd, zeros, offset)
        os.fsync(fd)
        data = os.urandom(chunk)
        times, worst, offset = [], {}, 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            began = time.perf_counter()
            os.pwrite(fd, data, offset)
            os.fdatasync(fd)
            took = (time.perf_counter() - began) * 1000
            offset = (offset + chunk) % size
            times.append(took)
            second = int(time.monotonic() - start)
            worst[second] = max(worst.get(second, 0.0), took)
            time.sleep(0.002)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    n = len(times)

    def at(p):
        return times[min(n - 1, int(n * p))]

    print(f"{n} syncs of {chunk} bytes in {seconds:.0f} s: p50 {at(0.5):.2f} ms, "
          f"p99 {at(0.99):.2f} ms, p99.9 {at(0.999):.2f} ms, longest {times[-1]:.2f} ms")
    print(f"over 50 ms: {sum(t > 50 for t in times)}, over 100 ms: {sum(t > 100 for t in times)}")
    slow = " ".join(f"{s}:{w:.0f}" for s, w in sorted(worst.items()) if w > 20)
    print(f"seconds whose longest sync took over 20 ms (second:ms): {slow or 'none'}")


if __name__ == "__main__":
    main()
