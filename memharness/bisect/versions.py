"""The released versions of a package between a good and a bad one, from the package index this machine reaches.

Sources, all read the way an installer reads them: the index's simple API (PEP 691 JSON, else the PEP 503
HTML page) at `--index-url` (default: `UV_INDEX_URL`, `PIP_INDEX_URL`, else PyPI), each `--extra-index-url`,
and each `--find-links` folder (the file names of its wheels and sdists). A version is every version that has
at least one file not yanked (PEP 592); versions are ordered by `packaging.version`. Pre-releases and dev
releases are left out unless asked for (or named as an end); post-releases are releases and stay.
"""

from __future__ import annotations

import html.parser
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from memharness.errors import MemharnessError

PYPI = "https://pypi.org/simple"
TIMEOUT_S = 60
_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


class VersionError(MemharnessError):
    """A bad range: unknown package or version, good not older than bad, nothing between them."""


@dataclass(frozen=True)
class Index:
    """Where packages come from: passed the same way to the version listing and to uv."""

    index_url: str | None = None  # None: UV_INDEX_URL, PIP_INDEX_URL, else PyPI
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    @property
    def primary(self) -> str:
        return self.index_url or os.environ.get("UV_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or PYPI

    @property
    def extras(self) -> list[str]:
        """`--extra-index-url`s, else uv's `UV_EXTRA_INDEX_URL` (uv reads it when it installs, so list from it too)."""
        return list(self.extra_index_urls) or os.environ.get("UV_EXTRA_INDEX_URL", "").split()

    def urls(self) -> list[str]:
        return [] if self.no_index else [self.primary, *self.extras]

    def uv_args(self) -> list[str]:
        """The same sources on uv's command line."""
        args: list[str] = ["--no-index"] if self.no_index else ["--index-url", self.primary]
        if not self.no_index:
            for url in self.extras:
                args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        return args

    def describe(self) -> str:
        parts = self.urls() + [f"find-links {link}" for link in self.find_links]
        return ", ".join(parts) or "no source"

    def to_dict(self) -> dict:
        return {"index_url": self.index_url, "extra_index_urls": list(self.extra_index_urls),
                "find_links": list(self.find_links), "no_index": self.no_index}

    @classmethod
    def from_dict(cls, d: dict) -> Index:
        return cls(d.get("index_url"), tuple(d.get("extra_index_urls") or ()), tuple(d.get("find_links") or ()),
                   bool(d.get("no_index")))


@dataclass
class Listing:
    """Every version found, with the yanked ones apart."""

    versions: dict[Version, str] = field(default_factory=dict)  # version -> its text as published
    yanked: set[Version] = field(default_factory=set)

    def add(self, version: Version, text: str, yanked: bool) -> None:
        if yanked:
            if version not in self.versions:
                self.yanked.add(version)
            return
        self.yanked.discard(version)
        self.versions.setdefault(version, text)


def _version_of(filename: str, name: str) -> tuple[Version, str] | None:
    """The version of a distribution file of `name`, or None for another project's file or not a dist."""
    try:
        if filename.endswith(".whl"):
            dist, version, _, _ = parse_wheel_filename(filename)
        elif filename.endswith((".tar.gz", ".zip")):
            dist, version = parse_sdist_filename(filename)
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    if canonicalize_name(dist) != name:
        return None
    return version, str(version)


class _Links(html.parser.HTMLParser):
    """The anchors of a PEP 503 page: (file name, yanked)."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[tuple[str, bool]] = []
        self._attrs: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._attrs, self._text = dict(attrs), []

    def handle_data(self, data):
        if self._attrs is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._attrs is not None:
            href = self._attrs.get("href") or ""
            name = urllib.parse.unquote(urllib.parse.urlsplit(href).path.rsplit("/", 1)[-1]) or "".join(self._text)
            self.files.append((name.strip(), "data-yanked" in self._attrs))
            self._attrs = None


def _read(url: str) -> tuple[bytes, str]:
    """The body and content type of `url`; a `file://` folder reads its index.html."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = Path(urllib.request.url2pathname(parts.path))
        if path.is_dir():
            path = path / "index.html"
        return path.read_bytes(), "text/html"
    req = urllib.request.Request(url, headers={"Accept": _ACCEPT, "User-Agent": "memharness-bisect"})
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 - the user's index
        return resp.read(), resp.headers.get("Content-Type", "")


def _from_index(base: str, name: str, listing: Listing) -> bool:
    """Add the files of `name` on the index at `base`; False when the index has no such project."""
    url = base.rstrip("/") + f"/{name}/"
    try:
        body, ctype = _read(url)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise VersionError(f"cannot list the versions of {name} from {base}: HTTP {exc.code}") from None
    except FileNotFoundError:
        return False
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise VersionError(f"cannot list the versions of {name} from {base}: {reason}") from None
    if "json" in ctype:
        data = json.loads(body)
        files = [(f.get("filename", ""), bool(f.get("yanked"))) for f in data.get("files", [])]
    else:
        parser = _Links()
        parser.feed(body.decode("utf-8", "replace"))
        files = parser.files
    for filename, yanked in files:
        found = _version_of(filename, name)
        if found:
            listing.add(*found, yanked)
    return True


def _from_folder(folder: str, name: str, listing: Listing) -> None:
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(folder).path)) if folder.startswith("file:") \
        else Path(folder)
    if not path.is_dir():
        raise VersionError(f"--find-links {folder}: not a folder")
    for entry in path.iterdir():
        found = _version_of(entry.name, name)
        if found:
            listing.add(*found, False)


def list_versions(package: str, index: Index) -> Listing:
    """Every version of `package` on the index and the find-links folders."""
    name = canonicalize_name(package)
    listing = Listing()
    seen = False
    for url in index.urls():
        seen = _from_index(url, name, listing) or seen
    for folder in index.find_links:
        _from_folder(folder, name, listing)
    if not listing.versions:
        where = index.describe()
        what = "no installable release" if seen or listing.yanked else "no release"
        raise VersionError(f"{package}: {what} found on {where}")
    return listing


def parse(text: str, what: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise VersionError(f"{what} {text!r} is not a version (PEP 440)") from None


def _nearest(listing: Listing, wanted: Version, n: int = 3) -> str:
    ordered = sorted(listing.versions)
    below = [v for v in ordered if v < wanted][-n:]
    above = [v for v in ordered if v > wanted][:n]
    near = [listing.versions[v] for v in below + above]
    return f"; nearest released: {', '.join(near)}" if near else ""


def between(listing: Listing, package: str, good: str, bad: str, pre: bool = False) -> list[str]:
    """The released versions from `good` to `bad`, both included, oldest first (as published).

    Errors (one line each): a version that is not released (or yanked), good not older than bad."""
    g, b = parse(good, "--good"), parse(bad, "--bad")
    for v, text, what in ((g, good, "--good"), (b, bad, "--bad")):
        if v in listing.yanked:
            raise VersionError(f"{what} {text}: {package} {text} is yanked on the index")
        if v not in listing.versions:
            raise VersionError(f"{what} {text}: {package} has no release {text}{_nearest(listing, v)}")
    if g == b:
        raise VersionError(f"--good and --bad are the same version ({good}): nothing to bisect")
    if g > b:
        raise VersionError(f"--good {good} is newer than --bad {bad}: give the older, known-good version as --good")
    inside = [v for v in sorted(listing.versions) if g <= v <= b and (pre or v in (g, b) or not v.is_prerelease)]
    return [listing.versions[v] for v in inside]


_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def label(text: str) -> str:
    """A folder-safe form of a version or commit label."""
    return _SAFE.sub("_", text)
