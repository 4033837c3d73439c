"""Side-by-side benchmark: the dtask-async worker against the official worker.

Each worker runs in a process of its own, one at a time, against the same kind
of backend (the official in-memory backend, then the dtask-async embedded
backend), started afresh in its own process for each worker's run. The driver is
the official async client. Rounds alternate which worker goes first; the table
reports medians.

Scenarios:
  chain  N orchestrations of 3 sequential activities   (orchestrations/s)
  fan    one orchestration of N parallel activities     (activities/s)
  seq    one orchestration of N sequential activities   (activities/s)

Worker CPU seconds per activity and peak RSS are read from /proc.

On the embedded backend our worker uses the batched work channel; it also runs a
third time there without it (``GetWorkItems`` and one call per result, what it does
on any other server), unless --no-per-item-calls is given.

Usage: python benchmarks/run.py [--rounds 3] [--chain 300] [--fan 2000] [--seq 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
WAIT_CONCURRENCY = 4  # the official backend serves blocking waits from 10 threads


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Sample:
    backend: str
    sdk: str
    scenario: str
    round: int
    seconds: float
    units: int
    cpu: float
    rss_mib: float

    @property
    def rate(self) -> float:
        return self.units / self.seconds

    @property
    def cpu_per_unit_ms(self) -> float:
        return 1000 * self.cpu / self.units


@dataclass
class Results:
    samples: list[Sample] = field(default_factory=list)

    def median(self, backend: str, sdk: str, scenario: str, attr: str) -> float:
        values = [
            getattr(s, attr)
            for s in self.samples
            if (s.backend, s.sdk, s.scenario) == (backend, sdk, scenario)
        ]
        return statistics.median(values) if values else float("nan")


async def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def start_backend(kind: str, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    if kind == "official":
        args = [sys.executable, str(HERE / "official_backend.py"), str(port)]
    else:
        db = tmp / f"bench-{port}.db"
        args = [
            sys.executable,
            "-m",
            "dtask_async",
            "emulator",
            "--port",
            str(port),
            "--db",
            str(db),
        ]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_worker(sdk: str, address: str) -> subprocess.Popen[bytes]:
    script = HERE / ("official_worker.py" if sdk == "official" else "our_worker.py")
    extra = ["--no-work-channel"] if sdk == "ours-calls" else []
    process = subprocess.Popen(
        [sys.executable, str(script), address, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=HERE,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if line != "ready":
        process.kill()
        raise RuntimeError(f"{sdk} worker did not start (said {line!r})")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def drive(client: Any, scenario: str, size: int) -> int:
    """Run one scenario to completion; returns the number of units done."""
    if scenario == "chain":
        ids = []
        for start in range(0, size, 50):
            ids += await asyncio.gather(
                *(
                    client.schedule_new_orchestration("chain", input=i)
                    for i in range(start, min(size, start + 50))
                )
            )
        gate = asyncio.Semaphore(WAIT_CONCURRENCY)

        async def wait(instance_id: str, expected: int) -> None:
            async with gate:
                state = await client.wait_for_orchestration_completion(instance_id, timeout=600)
            if state is None or state.serialized_output != str(expected):
                raise RuntimeError(f"chain {instance_id} ended as {state}")

        await asyncio.gather(*(wait(x, i + 3) for i, x in enumerate(ids)))
        return size
    instance_id = await client.schedule_new_orchestration(scenario, input=size)
    state = await client.wait_for_orchestration_completion(instance_id, timeout=600)
    expected = sum(range(1, size + 1)) if scenario == "fan" else size
    if state is None or state.serialized_output != str(expected):
        raise RuntimeError(f"{scenario} ended as {state}")
    return size


async def run(args: argparse.Namespace) -> Results:
    results = Results()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            sdks = ["official", "ours"]
            if backend == "embedded" and args.per_item_calls:
                sdks.append("ours-calls")
            for round_no in range(args.rounds):
                # Each round starts with a different worker.
                shift = round_no % len(sdks)
                for sdk in sdks[shift:] + sdks[:shift]:
                    await run_worker(results, args, backend, sdk, round_no, Path(tmp))
    return results


async def run_worker(
    results: Results, args: argparse.Namespace, backend: str, sdk: str, round_no: int, tmp: Path
) -> None:
    """One worker's run of every scenario, against a fresh backend process of its own,
    so that no run pays for the instances (or a stopped worker's leftovers) of the
    runs before it."""
    from durabletask.client import AsyncTaskHubGrpcClient

    sizes = {"chain": args.chain, "fan": args.fan, "seq": args.seq}
    port = free_port()
    server = start_backend(backend, port, tmp)
    try:
        await wait_for_port(port, server)
        address = f"127.0.0.1:{port}"
        client = AsyncTaskHubGrpcClient(
            host_address=address, logger=logging.getLogger("bench.client")
        )
        worker = start_worker(sdk, address)
        try:
            for scenario in args.scenarios:
                before = cpu_seconds(worker.pid)
                started = time.perf_counter()
                units = await drive(client, scenario, sizes[scenario])
                elapsed = time.perf_counter() - started
                sample = Sample(
                    backend=backend,
                    sdk=sdk,
                    scenario=scenario,
                    round=round_no,
                    seconds=elapsed,
                    units=units,
                    cpu=cpu_seconds(worker.pid) - before,
                    rss_mib=peak_rss_mib(worker.pid),
                )
                if scenario == "chain":
                    sample.cpu = sample.cpu / 3  # rate in orchestrations, CPU per activity
                results.samples.append(sample)
                print(
                    f"  {backend:8} {sdk:10} {scenario:5} round {round_no}: "
                    f"{sample.rate:8.0f}/s  "
                    f"cpu {sample.cpu_per_unit_ms:.3f} ms/unit  "
                    f"rss {sample.rss_mib:.0f} MiB",
                    flush=True,
                )
        finally:
            stop(worker)
            await client.close()
    finally:
        stop(server)


def report(results: Results, args: argparse.Namespace) -> str:
    units = {"chain": "orch/s", "fan": "act/s", "seq": "act/s"}
    lines = [
        "| backend | scenario | official | dtask-async | ratio "
        "| CPU/activity ratio | peak RSS ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    rows = [(backend, "ours", backend) for backend in args.backends]
    if "embedded" in args.backends and args.per_item_calls:
        rows.append(("embedded", "ours-calls", "embedded, no work channel"))
    for backend, sdk, label in rows:
        for scenario in args.scenarios:
            theirs = results.median(backend, "official", scenario, "rate")
            ours = results.median(backend, sdk, scenario, "rate")
            cpu_theirs = results.median(backend, "official", scenario, "cpu_per_unit_ms")
            cpu_ours = results.median(backend, sdk, scenario, "cpu_per_unit_ms")
            rss_theirs = results.median(backend, "official", scenario, "rss_mib")
            rss_ours = results.median(backend, sdk, scenario, "rss_mib")
            lines.append(
                f"| {label} | {scenario} | {theirs:,.0f} {units[scenario]} | "
                f"{ours:,.0f} {units[scenario]} | **{ours / theirs:.2f}x** | "
                f"{cpu_ours / cpu_theirs:.2f} | {rss_ours / rss_theirs:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chain", type=int, default=300)
    parser.add_argument("--fan", type=int, default=2000)
    parser.add_argument("--seq", type=int, default=1000)
    parser.add_argument("--backends", default="official,embedded", type=lambda s: s.split(","))
    parser.add_argument("--scenarios", default="chain,fan,seq", type=lambda s: s.split(","))
    parser.add_argument("--output", type=Path, default=Path("bench-results/latest.json"))
    parser.add_argument(
        "--no-per-item-calls",
        dest="per_item_calls",
        action="store_false",
        help="on the embedded backend, skip the extra run of our worker without the\n"
        "batched work channel (GetWorkItems and one call per result)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"dtask-async benchmark on {os.cpu_count()} cores; {args.rounds} rounds", flush=True)
    results = asyncio.run(run(args))
    table = report(results, args)
    print("\nMedians (ratio = dtask-async / official; CPU and RSS: lower is better)\n")
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps({"samples": [asdict(s) for s in results.samples], "table": table}, indent=2)
    )


if __name__ == "__main__":
    main()
