"""Helpers the interop scripts share: a process's resident memory and protobuf varints."""


def rss_kib(pid):
    """The resident set size of process `pid`, in KiB (from /proc), or -1."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def varint(n):
    """`n` as a protobuf base-128 varint."""
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out
