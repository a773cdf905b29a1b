#!/usr/bin/env python3
"""No acknowledged registration is lost, and no duplicate gets in, across hard kills.

Each round opens a new window, sends registrations from concurrent clients, kills the
server with SIGKILL at a random moment, starts it again on the same database, then
checks:

- every registration answered `201` is still there: its status is read back with the
  access code from its receipt (`GET /api/v1/entries/{id}`);
- no duplicate got in: every person was sent more than once (from different clients at
  the same moment, with the same identity and contact), at most one of those got a
  `201`, and the database holds at most one live entry per person, document, e-mail
  address and phone number.

Run by `scripts/durability.sh`, which builds the binary; standard library only, except
that a PostgreSQL database is read with `psql`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def letters(n: int) -> str:
    """A few letters that differ for each n (names may not hold digits)."""
    out = ""
    while True:
        out += chr(ord("a") + n % 26)
        n //= 26
        if n == 0:
            return out


def applicant(round_no: int, n: int) -> dict:
    """A valid registration; (round_no, n) makes the person and contact distinct."""
    k = round_no * 100_000 + n
    return {
        "family_name": "Durable" + letters(k),
        "given_names": "Awa",
        "birth_date": "1990-05-17",
        "nationality": "SEN",
        "document": {"kind": "foreigner_number", "number": f"{k:010d}", "country": "FRA"},
        "email": f"durable{k}@example.org",
        "phone": f"+336{k:08d}",
        "permit_expires_on": "2027-01-20",
        "language": "fr",
    }


class Server:
    """`tirage serve` as a child process, on a fixed port."""

    def __init__(self, binary: str, database: str, port: int, token: str, log_path: str):
        self.binary, self.database, self.port, self.token = binary, database, port, token
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            TIRAGE_DATABASE_URL=self.database,
            TIRAGE_LISTEN=f"{HOST}:{self.port}",
            TIRAGE_ADMIN_TOKEN=self.token,
            TIRAGE_MAIL="log",
            # every client is on this machine: the per-address budgets would refuse them
            TIRAGE_RATE_REGISTRATION="off",
            TIRAGE_RATE_STATUS="off",
            RUST_LOG=env.get("RUST_LOG", "warn"),
        )
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([self.binary, "serve"], env=env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start (log: {self.log_path})")
            try:
                status, _ = request(self.port, "GET", "/healthz", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the server did not answer /healthz within 60 s")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, no flush, as a power cut would do to the process."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def request(port, method, path, body=None, bearer=None, timeout=10):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        text = response.read()
        return response.status, (json.loads(text) if text else None)
    finally:
        conn.close()


def open_window(port: int, token: str) -> str:
    now = datetime.now(timezone.utc)
    body = {
        "site": "34",
        "procedure": "renewal",
        "registration_opens_at": iso(now - timedelta(minutes=1)),
        "registration_closes_at": iso(now + timedelta(days=1)),
        "draw_at": iso(now + timedelta(days=2)),
        "beacon": "none",
        "slots": [{"starts_at": iso(now + timedelta(days=10)), "counter": "G1"}],
    }
    status, window = request(port, "POST", "/api/v1/windows", body, token)
    if status != 201:
        raise RuntimeError(f"creating the window: {status} {window}")
    status, opened = request(port, "POST", f"/api/v1/windows/{window['id']}/open", None, token)
    if status != 200:
        raise RuntimeError(f"opening the window: {status} {opened}")
    return window["id"]


class Tally:
    """What the clients saw, shared between their threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.receipts: dict[int, list[dict]] = {}  # person -> receipts answered 201
        self.statuses: dict[str, int] = {}  # "201", "409", "error", ...

    def saw(self, kind: str) -> None:
        with self.lock:
            self.statuses[kind] = self.statuses.get(kind, 0) + 1

    def acknowledged(self, person: int, receipt: dict) -> None:
        with self.lock:
            self.receipts.setdefault(person, []).append(receipt)
            self.statuses["201"] = self.statuses.get("201", 0) + 1


def client(port, window_id, round_no, people, copies, tally, stop):
    """Registers `people` in turn, each one `copies` times at once from as many threads."""
    path = f"/api/v1/windows/{window_id}/entries"
    for person in people:
        if stop.is_set():
            return
        body = applicant(round_no, person)

        def send(body=body, person=person):
            try:
                status, answer = request(port, "POST", path, body, timeout=30)
            except (OSError, http.client.HTTPException, json.JSONDecodeError):
                tally.saw("connection error")
                return
            if status == 201:
                tally.acknowledged(person, answer)
            else:
                tally.saw(str(status))

        threads = [threading.Thread(target=send) for _ in range(copies)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def psql() -> str:
    """`psql`: $PSQL, on the PATH, or from Debian's PostgreSQL folders."""
    if os.environ.get("PSQL"):
        return os.environ["PSQL"]
    found = shutil.which("psql")
    if found:
        return found
    import glob

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))
    if not candidates:
        raise RuntimeError("psql is needed to check a PostgreSQL database; set PSQL")
    return candidates[-1]


def live_entries(database: str, window_id: str) -> tuple[int, int, int, int, int]:
    """Live entries of the window, and how many distinct keys of each rule they hold."""
    sql = (
        "select count(*), count(distinct person_key), count(distinct document_key), "
        "count(distinct email_key), count(distinct phone_key) from entries "
        f"where window_id = '{window_id}' and status <> 'withdrawn'"
    )
    if database.startswith("postgres"):
        out = subprocess.run(
            [psql(), "-X", "-A", "-t", "-F", " ", "-c", sql, database],
            check=True, capture_output=True, text=True,
        ).stdout
        return tuple(int(x) for x in out.split())
    import sqlite3

    path = database
    for prefix in ("sqlite://", "sqlite:"):
        if path.startswith(prefix):
            path = path[len(prefix):]
            break
    path = path.split("?")[0]
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return tuple(conn.execute(sql).fetchone())


def run_round(args, server: Server, round_no: int, rng: random.Random) -> dict:
    window_id = open_window(server.port, server.token)
    tally = Tally()
    stop = threading.Event()
    people = list(range(args.people))
    # Each client takes every `clients`-th person; every person goes out `copies` times.
    clients = [
        threading.Thread(
            target=client,
            args=(server.port, window_id, round_no, people[i :: args.clients], args.copies, tally, stop),
        )
        for i in range(args.clients)
    ]
    for c in clients:
        c.start()
    kill_after = rng.uniform(args.kill_min, args.kill_max)
    time.sleep(kill_after)
    server.kill()
    stop.set()
    for c in clients:
        c.join()

    server.start()
    lost = []
    for person, receipts in tally.receipts.items():
        for receipt in receipts:
            status, view = request(
                server.port, "GET", f"/api/v1/entries/{receipt['entry_id']}", bearer=receipt["access_code"]
            )
            if status != 200 or view.get("entry_id") != receipt["entry_id"]:
                lost.append(receipt["entry_id"])
    twice = [p for p, r in tally.receipts.items() if len(r) > 1]
    live, persons, documents, emails, phones = live_entries(args.database, window_id)
    duplicates_in_db = live - min(persons, documents, emails, phones)
    acknowledged = sum(len(r) for r in tally.receipts.values())
    return {
        "round": round_no,
        "killed_after_s": round(kill_after, 2),
        "acknowledged": acknowledged,
        "in_database": live,
        "lost": len(lost),
        "duplicates_acknowledged": len(twice),
        "duplicates_in_database": duplicates_in_db,
        "answers": dict(sorted(tally.statuses.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", required=True, help="the tirage binary")
    parser.add_argument("--database", help="database URL (default: a new temporary SQLite file)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--people", type=int, default=4000, help="people per round (more than can be sent before the kill)")
    parser.add_argument("--copies", type=int, default=2, help="how many times each person is sent, at once")
    parser.add_argument("--kill-min", type=float, default=0.3, help="earliest kill, seconds after the clients start")
    parser.add_argument("--kill-max", type=float, default=3.0, help="latest kill")
    parser.add_argument("--seed", type=int, help="seed of the kill times (default: random, printed)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="tirage-durability-")
    if not args.database:
        args.database = f"sqlite://{workdir}/tirage.db?mode=rwc"
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    rng = random.Random(seed)
    token = secrets.token_hex(24)
    engine = "postgresql" if args.database.startswith("postgres") else "sqlite"
    print(f"durability: {engine}, {args.rounds} rounds, {args.clients} clients, "
          f"each person sent {args.copies} times at once, kill seed {seed}")

    failures = 0
    totals = {"acknowledged": 0, "lost": 0, "duplicates": 0}
    server = Server(args.binary, args.database, free_port(), token, os.path.join(workdir, "server.log"))
    try:
        server.start()
        for round_no in range(1, args.rounds + 1):
            result = run_round(args, server, round_no, rng)
            bad = result["lost"] or result["duplicates_acknowledged"] or result["duplicates_in_database"]
            failures += bool(bad)
            totals["acknowledged"] += result["acknowledged"]
            totals["lost"] += result["lost"]
            totals["duplicates"] += result["duplicates_acknowledged"] + result["duplicates_in_database"]
            answers = ", ".join(f"{k}: {v}" for k, v in result["answers"].items())
            print(
                f"round {round_no:2}: killed after {result['killed_after_s']:.2f} s; "
                f"{result['acknowledged']} acknowledged, {result['in_database']} in the database, "
                f"{result['lost']} lost, {result['duplicates_acknowledged']} duplicates acknowledged, "
                f"{result['duplicates_in_database']} duplicates stored ({answers})"
                + ("  FAILED" if bad else ""),
                flush=True,
            )
            if result["acknowledged"] == 0:
                print("  (nothing was acknowledged before the kill: the round checks nothing)")
    finally:
        server.stop()
    print(f"total: {totals['acknowledged']} acknowledged, {totals['lost']} lost, "
          f"{totals['duplicates']} duplicates, {failures} failed rounds")
    if failures:
        print(f"server log kept in {workdir}", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
