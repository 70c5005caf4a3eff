"""Receiver: a UDP socket read on a background thread, decoded by one protocol's Decoder.

The consumer (Blender's timer, the ``record`` verb) polls: :meth:`Receiver.latest` hands out the
newest frame (each at most once); while :meth:`Receiver.start_recording` is on, every frame is
also appended to a bounded record buffer that :meth:`Receiver.stop_recording` returns. Bad
packets are counted (``Stats``) and dropped; nothing a sender does can raise in the thread or
stall it. :meth:`Receiver.stop` always closes the socket, also when the thread failed.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass

from ..errors import GaussianHeadsError
from . import protocol as get_protocol
from .frame import LiveFrame, PacketError

RECV_BYTES = 65536  # larger than any UDP payload: a datagram is never cut short
POLL_S = 0.05  # the thread wakes this often to notice stop()
RECORD_LIMIT = 60 * 60 * 60  # frames the record buffer keeps (an hour at 60 fps)


@dataclass
class Stats:
    received: int = 0  # datagrams read from the socket
    frames: int = 0  # frames decoded
    malformed: int = 0  # packets dropped as malformed (truncated, wrong layout, bad numbers)
    nonfinite: int = 0  # packets dropped for a NaN/infinite value
    oversized: int = 0  # packets dropped for exceeding the protocol's size limit
    unknown: int = 0  # packets dropped because no name in them is one of our channels
    unknown_names: int = 0  # names left out of frames that were kept
    dropped: int = 0  # frames replaced by a newer one before the consumer took them
    record_overflow: int = 0  # frames not recorded because the record buffer was full

    def to_dict(self) -> dict:
        return asdict(self)


class Receiver:
    """Listen for ``protocol_name`` packets on ``host:port`` (UDP).

    ``host`` is the interface to bind ("127.0.0.1" for this machine only, "0.0.0.0" for every
    interface; the caller chooses). ``port`` 0 picks a free port (see :attr:`port`). Raises
    GaussianHeadsError when the port is in use or the address cannot be bound.
    """

    def __init__(self, protocol_name: str, host: str, port: int, *, record_limit: int = RECORD_LIMIT):
        self.protocol = get_protocol(protocol_name)
        self.name = protocol_name
        self._decoder = self.protocol.Decoder()
        self.stats = Stats()
        self._lock = threading.Lock()
        self._latest: LiveFrame | None = None
        self._latest_taken = True
        self._recording = False
        self._record: deque[LiveFrame] = deque()
        self._record_limit = int(record_limit)
        self._stop = threading.Event()
        self.error: str | None = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, int(port)))
            self._sock.settimeout(POLL_S)
        except OSError as exc:
            self._sock.close()
            if exc.errno in (errno.EADDRINUSE, 10048):  # 10048: WSAEADDRINUSE on Windows
                raise GaussianHeadsError(
                    f"UDP port {port} on {host} is already in use (another receiver, or another "
                    f"program such as Unreal, VSeeFace or a second Blender, is listening on it); "
                    f"stop it or choose another port") from None
            raise GaussianHeadsError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        except (OverflowError, TypeError, ValueError) as exc:
            self._sock.close()
            raise GaussianHeadsError(f"cannot listen on {host}:{port}: {exc}") from None
        self.host, self.port = self._sock.getsockname()[:2]
        self._thread = threading.Thread(target=self._run, name=f"gaussian-heads-live-{protocol_name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        sock = self._sock
        try:
            while not self._stop.is_set():
                try:
                    packet = sock.recv(RECV_BYTES)
                except socket.timeout:
                    continue
                except OSError:
                    if self._stop.is_set():
                        break
                    continue  # e.g. ICMP port unreachable surfacing on Windows: keep listening
                self._handle(packet, time.perf_counter())
        except Exception as exc:  # never expected: keep the message for the UI, end quietly
            self.error = f"{type(exc).__name__}: {exc}"

    def _handle(self, packet: bytes, now: float) -> None:
        st = self.stats
        st.received += 1
        try:
            frame = self._decoder.feed(packet)
        except PacketError as exc:
            setattr(st, exc.kind, getattr(st, exc.kind) + 1)
            return
        if frame is None:
            return
        frame = frame.stamped(now)
        with self._lock:
            st.frames += 1
            st.unknown_names += len(frame.unknown)
            if not self._latest_taken:
                st.dropped += 1
            self._latest, self._latest_taken = frame, False
            if self._recording:
                if len(self._record) < self._record_limit:
                    self._record.append(frame)
                else:
                    st.record_overflow += 1

    # ------------------------------------------------------------------ consumer side
    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def latest(self, *, new_only: bool = True) -> LiveFrame | None:
        """The newest frame; with ``new_only`` None unless it arrived since the last call."""
        with self._lock:
            if new_only and self._latest_taken:
                return None
            self._latest_taken = True
            return self._latest

    def start_recording(self) -> None:
        """Start (or restart) a take: the record buffer is emptied and collects every frame."""
        with self._lock:
            self._record.clear()
            self._recording = True

    def stop_recording(self) -> list[LiveFrame]:
        """End the take and return its frames (arrival order)."""
        with self._lock:
            self._recording = False
            frames = list(self._record)
            self._record.clear()
        return frames

    @property
    def recording(self) -> bool:
        return self._recording

    @property
    def n_recorded(self) -> int:
        """Frames in the record buffer so far."""
        return len(self._record)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and close the socket (idempotent; the socket is closed even if the
        thread does not end within ``timeout``)."""
        self._stop.set()
        try:
            if self._thread.is_alive() and threading.current_thread() is not self._thread:
                self._thread.join(timeout)
        finally:
            self._sock.close()

    def __enter__(self) -> "Receiver":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

