"""Boot only: the trace of a power cut (docs/contracts.md 1.6, ``not_sampled_s``).

The slots after each channel's newest reading in the outbox up to now were not sampled: one
reading on NOT_SAMPLED at now says since when (its value: the seconds before now), so every slot
in ``[now - value, now]`` without a reading was not sampled. One reading a gap, whatever its
length. Imported by ``station.bring_up`` once the station is built and dropped afterwards, so it
costs the running station no RAM. On a clock that is not plausible at boot the gap cannot be
measured and is not reported.
"""

from micropython import const

from clock import MIN_VALID_S

NOT_SAMPLED = const(35)


def report(st):
    now = st.clock.now()
    first = 0
    for s in st.sampler.slots:
        f = (s.last_slot // s.iv + 1) * s.iv
        if s.last_slot >= MIN_VALID_S and f <= now and (not first or f < first):
            first = f
    if first and now > st.outbox.last_time.get(NOT_SAMPLED, 0):
        print("I not sampled from", first, "to", now)
        st.store(NOT_SAMPLED, now, now - first, 0, st.clock.flags(now))
