"""``watershed station ...``: a technician's tools for one station on the bench or in the field.

``check`` (a config against the firmware's own validator and the board's pin map), ``flash``
(the firmware and a config onto a board over USB, with mpremote) and ``dump`` (the outbox as CSV
over the console, loadable into a gateway store).
"""
