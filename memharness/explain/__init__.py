"""`memharness explain`: which allocation sites hold a call's peak (memray for host memory, torch's allocator
history for CUDA), measured in a second run of the cell with the recorders on only around that call.

`hook.py` runs inside the measured processes (standard library at import); the rest runs in the CLI.
"""

EXTRA_HINT = "install the explain extra: pip install 'memharness[explain]' (memray)"


def missing_extra(gpu: bool = False, host: bool = True) -> str | None:
    """A one-line message naming the extra to install, or None when the recorders can be imported (memray
    only where host memory is explained: `--gpu` alone reads torch's allocator history)."""
    if host:
        try:
            import memray  # noqa: F401
        except ImportError:
            return f"memray is not installed; {EXTRA_HINT}"
    if gpu:
        try:
            import torch  # noqa: F401
        except ImportError:
            return "torch is not installed; --gpu needs torch with CUDA (pip install 'memharness[explain,gpu]')"
    return None
