"""``madang bench timecode``: chasing Art-Net TimeCode over real UDP loopback.

A source sends ArtTimeCode at its frame rate on the loopback interface (one datagram at each
frame edge, on a schedule of the monotonic clock: the source's own clock); the receiver feeds a
:class:`~controller.chase.Chaser` with each arrival. Figures:

* ``lock_ms``: first datagram to :class:`~controller.chase.Locked`;
* ``error_us``: the chased show clock minus the source's true time, sampled at every arrival
  while locked (p50, p99 of the absolute error, and the jitter: p99 - p1 of the signed error);
* across a dropout of ``dropout_s`` (the source falls silent, then carries on where its clock
  says): ``freewheel_drift_us`` (the chased clock's error on the first frame after it),
  ``relock_ms`` (return to :class:`~controller.chase.Relocked`) and whether a seek happened.

The source and the chaser share one machine's clock, so the drift measures the chaser, not two
crystals; a real source drifts by its own ppm on top.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import numpy as np

from controller.chase import ChaseOptions, Chaser, Jumped, Locked, Relocked
from controller.timecode import FrameRate, decode_artnet, encode_artnet, from_frames, to_frames

__all__ = ["run"]


async def _run(fps: str, seconds: float, dropout_s: float) -> dict[str, Any]:
    rate = FrameRate.parse(fps)
    frame_ns = int(rate.frame_ns)
    chaser = Chaser(ChaseOptions(frame_ns=frame_ns, freewheel_ns=int((dropout_s + 1) * 1e9)))
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    port = rx.getsockname()[1]
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    loop = asyncio.get_running_loop()
    edge: dict[int, int] = {}  # frame -> the instant of its edge on the source's clock
    first_frame = 3600 * rate.nominal  # around 01:00:00
    errors: list[int] = []
    lock_at: list[int] = []
    relock_at: list[int] = []
    jumps = [0]
    after_drop: list[int] = []
    state = {"resume_ns": 0}

    def readable() -> None:
        while True:
            try:
                data = rx.recv(64)
            except BlockingIOError:
                return
            now = time.monotonic_ns()
            tc = decode_artnet(data)
            if tc is None:
                continue
            frame = to_frames(tc)
            events = chaser.receive(now, tc.ns)
            for ev in events:
                if isinstance(ev, Locked):
                    lock_at.append(now)
                elif isinstance(ev, Relocked):
                    relock_at.append(now)
                elif isinstance(ev, Jumped):
                    jumps[0] += 1
            show = chaser.show_ns_at(now)
            if show is None:
                continue
            # the source's clock: its frame edges fall at t0 + i * frame (its sends may be late)
            true = tc.ns + (now - edge[frame])
            err = show - true
            if state["resume_ns"] and now >= state["resume_ns"] and not after_drop:
                after_drop.append(err)
            else:
                errors.append(err)

    loop.add_reader(rx.fileno(), readable)
    try:
        t0 = time.monotonic_ns()
        n_total = int(seconds * 1e9 / rate.frame_ns)
        drop_from = n_total // 3
        drop_frames = int(dropout_s * 1e9 / rate.frame_ns)
        for i in range(n_total):
            due = t0 + int(i * rate.frame_ns)
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            chaser.poll(time.monotonic_ns())
            if drop_from <= i < drop_from + drop_frames:
                continue
            if i == drop_from + drop_frames:
                state["resume_ns"] = time.monotonic_ns()
            frame = first_frame + i
            edge[frame] = due
            tx.sendto(encode_artnet(from_frames(frame, rate)), ("127.0.0.1", port))
        await asyncio.sleep(0.05)
    finally:
        loop.remove_reader(rx.fileno())
        rx.close()
        tx.close()
    e = np.array(errors, dtype=np.float64) / 1e3
    return {
        "fps": str(rate),
        "frames_sent": n_total - drop_frames,
        "lock_ms": None if not lock_at else round((lock_at[0] - t0) / 1e6, 2),
        "error_us": {
            "p50_abs": round(float(np.percentile(np.abs(e), 50)), 1),
            "p99_abs": round(float(np.percentile(np.abs(e), 99)), 1),
            "jitter_p99_p1": round(float(np.percentile(e, 99) - np.percentile(e, 1)), 1),
            "samples": len(errors),
        },
        "dropout_s": dropout_s,
        "freewheel_drift_us": None if not after_drop else round(after_drop[0] / 1e3, 1),
        "relock_ms": None if not relock_at else round((relock_at[0] - state["resume_ns"]) / 1e6, 2),
        "seeks_after_dropout": jumps[0],
    }


def run(fps: str = "25", seconds: float = 6.0, dropout_s: float = 2.0) -> dict[str, Any]:
    """Chase Art-Net TimeCode for ``seconds`` with a ``dropout_s`` silence; the figures."""
    return asyncio.run(_run(fps, seconds, dropout_s))


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
