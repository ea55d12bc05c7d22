"""memharness: memory profiling for retrieval indexing pipelines."""

__version__ = "0.1.0"
FORMAT_VERSION = 1

__all__ = ["FORMAT_VERSION", "Profile", "ProfileError", "profile"]


def __getattr__(name: str):
    # The API is imported on first use, so `import memharness` in a measured cell stays standard-library only.
    if name in ("profile", "Profile", "ProfileError", "active_profile"):
        from memharness import api

        return getattr(api, name)
    raise AttributeError(f"module 'memharness' has no attribute {name!r}")
