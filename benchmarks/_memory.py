"""Peak memory of the calling process, for the benchmarks."""


def peak_rss_mib() -> float:
    """This process's peak resident set (``VmHWM`` of /proc/self/status), MiB.

    Unlike ``ru_maxrss`` it starts afresh in a new program: Linux carries ``ru_maxrss`` across
    ``execve``, so a child started by a large parent would report the parent's peak.
    """
    with open("/proc/self/status") as fh:
        kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    return kb / 1024
