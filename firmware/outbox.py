"""Durable outbox: every reading is in flash before it is offered, and leaves only on ACK.

Readings are appended as fixed-size records to one log file; the state file holds the next
sequence number and the cumulative ACK, replaced atomically (write, then rename) so a power cut
leaves either the old or the new state. When every reading is acknowledged the log is dropped.
Selective ACKs are kept in RAM only: after a reset those readings are offered again and the
gateway, which keys readings by (station, seq), drops the duplicates.
"""

import os
import struct

_RECORD = "<IBIBbq"  # seq, channel, time, flags, exponent, mantissa
_RECORD_SIZE = struct.calcsize(_RECORD)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class Outbox:
    def __init__(self, data_dir):
        self._log = data_dir + "/outbox.log"
        self._state = data_dir + "/outbox.state"
        self._buf = bytearray(_RECORD_SIZE)
        self.next_seq = 1
        self.acked_below = 1
        self._acked = set()  # selectively acked seqs above acked_below
        self._load()

    def _load(self):
        if _exists(self._state):
            with open(self._state) as f:
                parts = f.read().split()
            self.next_seq, self.acked_below = int(parts[0]), int(parts[1])
        if not _exists(self._log):
            return
        size = os.stat(self._log)[6]
        if size % _RECORD_SIZE:
            self._drop_torn_tail(size - size % _RECORD_SIZE)
        if size >= _RECORD_SIZE:
            with open(self._log, "rb") as f:
                f.seek((size // _RECORD_SIZE - 1) * _RECORD_SIZE)
                last = struct.unpack(_RECORD, f.read(_RECORD_SIZE))[0]
            if last >= self.next_seq:
                self.next_seq = last + 1

    def _drop_torn_tail(self, keep):
        # A power cut during an append leaves part of a record: keep only whole ones.
        tmp = self._log + ".tmp"
        with open(self._log, "rb") as src, open(tmp, "wb") as dst:
            while keep > 0:
                chunk = src.read(min(keep, 512))
                dst.write(chunk)
                keep -= len(chunk)
        os.rename(tmp, self._log)

    def _save_state(self):
        tmp = self._state + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d %d\n" % (self.next_seq, self.acked_below))
        os.rename(tmp, self._state)

    def append(self, channel, time, mantissa, exponent, flags):
        """Store one reading; returns its sequence number. Never reused, even across resets."""
        seq = self.next_seq
        struct.pack_into(_RECORD, self._buf, 0, seq, channel, time, flags, exponent, mantissa)
        with open(self._log, "ab") as f:
            f.write(self._buf)
        self.next_seq = seq + 1
        return seq

    def _records(self):
        if not _exists(self._log):
            return
        buf = self._buf
        with open(self._log, "rb") as f:
            while f.readinto(buf) == _RECORD_SIZE:
                seq, channel, time, flags, exponent, mantissa = struct.unpack(_RECORD, buf)
                yield (seq, channel, time, mantissa, exponent, flags)

    def pending(self, limit, first=0, end=0):
        """Up to ``limit`` unacked readings, oldest first; or, with ``end``, those in [first, end)."""
        out = []
        for r in self._records():
            seq = r[0]
            if end:
                if seq < first or seq >= end:
                    continue
            elif seq < self.acked_below or seq in self._acked:
                continue
            out.append(r)
            if len(out) >= limit:
                break
        return out

    def depth(self):
        return self.next_seq - self.acked_below - len(self._acked)

    def ack(self, cumulative, ranges):
        """Apply the gateway's ACK: everything below ``cumulative`` and each [first, end) range."""
        cumulative = min(cumulative, self.next_seq)
        for first, end in ranges:
            for seq in range(max(first, cumulative), min(end, self.next_seq)):
                self._acked.add(seq)
        while cumulative in self._acked:  # selective acks that have become contiguous
            cumulative += 1
        if cumulative <= self.acked_below:
            return
        self.acked_below = cumulative
        self._acked = set(s for s in self._acked if s >= cumulative)
        self._save_state()
        if self.acked_below >= self.next_seq and _exists(self._log):
            os.remove(self._log)  # state is saved first, so next_seq survives the removal
