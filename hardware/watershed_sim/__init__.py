"""Host-side simulators of station hardware: serial links, sensors, radios."""
