"""A new config on a running station (CONFIG frames or the console's ``set``): ``rebuild(st)``
tears the station down, checks and commits the config, answers, and builds again
(bringup.build). Imported by ``station.bring_up`` only then: boot does not carry it.
"""

import gc
import sys

import log
import wire
from bringup import _forget, build


def rebuild(st):
    """The station on a new config: ``st`` torn down (its buffers and drivers freed: the
    validator needs that heap), the new config (``st.pending``) checked and committed or
    refused, the answer sent (a RESULT to the gateway, or a console line), then built again on
    the same board, link, boot count and clock synchronisation."""
    board, uart, boots, path = st.board, st.uart, st.boot_count, st.path
    synced, addr, pending = st.clock.synced, st.address, st.pending
    backup = st.config_from == path
    st.outbox.close()
    st.outbox = st.sampler = st.decoder = st.clock = st._rx = None
    _forget()
    if pending:
        import config
        try:
            why = config.apply(path, pending[0], backup)
        finally:
            del sys.modules["config"]
        if why:
            log.e("config rejected:", why)
        if pending[1] is None:  # the gateway's CONFIG
            uart.write(wire.encode_result(addr, wire.CONFIG,
                                          wire.RESULT_REJECTED if why else wire.RESULT_OK,
                                          why or ""))
        elif not why:
            print("C set", pending[1])
        gc.collect()
    try:
        return build(path, board, uart, boots, synced)
    finally:
        sys.modules.pop("bringup", None)
