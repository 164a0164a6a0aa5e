"""CRC-32 (ISO-HDLC, as zlib's), bit by bit: wire.py's fallback on a port whose binascii lacks
crc32. A module of its own so that the ports that have it (all the boards') do not carry its
code in their heap."""


def crc32(data, crc=0):
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF
