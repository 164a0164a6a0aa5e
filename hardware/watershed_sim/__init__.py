"""The simulated world the real firmware, gateway and ingest run against.

- stations: ``station_process`` (the firmware in the MicroPython unix port, ``micropython``
  finds it), ``py_station`` (CPython stand-ins for gateway tests), ``virtual_board`` (a board on
  a pty for flashing tests), ``analog_input`` (what their ADC pins read);
- links: ``serial_link``, ``shared_bus`` (RS-485), ``radio_link``, over ``pty_hub``, with
  ``airtime`` and ``line_noise``; ``devices`` (SDI-12 and serial sensors on a station's ports);
- the world: ``environment`` (weather and river models), ``replay`` (recorded series),
  ``clock`` (simulated time), ``timeline`` (faults at their time);
- runs: ``scenario`` (TOML files, ``toml_lines`` for their line numbers), ``testbed`` (the whole
  chain on one machine), ``runner`` (a scenario through it), ``trace`` and ``report`` (truth
  versus stored), ``demo`` and ``commands`` (``watershed demo``, ``watershed sim run``).
"""
