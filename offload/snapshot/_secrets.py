"""What in a file's content looks like a secret: detect-secrets' detectors plus the project's rules.

:class:`ContentScan` is fed a file's bytes as they are read for hashing (one pass, any size) and
says what it found first, with the line. Every text file is searched with detect-secrets'
format-specific detectors (AWS, GitHub, GitLab, Slack, Stripe, npm, PyPI, JWT, private keys ...)
and the project's own rules (credentials that name no provider: ``.netrc`` lines, registry auth
entries, unquoted AWS secret keys, a service account's ``private_key``). Configuration files
(YAML, INI, TOML, env files, files without an extension) are also searched for secret-named
settings with detect-secrets' keyword detector, tuned by its own heuristic filters. Two families
are left out on purpose, because ordinary notebooks and data trip them: the high-entropy string
detectors (base64 images in outputs, hashes and ids in data) and the public-IP detector (not a
secret).

The search is bounded: detectors run only on lines where a literal anchor they need occurs (a
search the regex engine does at hundreds of MB/s), on a window of at most :data:`WINDOW`
characters around it. Binary files (a NUL byte in
their first 8 KiB) are searched for private-key markers only, over their whole length: a key is
found after the first MiB of a file too, and across two reads.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from detect_secrets.filters import heuristic
from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.keyword import REGEX_BY_FILETYPE, KeywordDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.util.filetype import FileType, determine_file_type

__all__ = ["ContentScan", "Finding", "PRIVATE_KEY_MARKERS"]

WINDOW = 4096  # the longest stretch of one line a detector sees at once
_OVERLAP_CHARS = 256  # windows overlap by this much, so a secret on a window's edge is still whole
_BINARY_PROBE = 8192

# Private keys, in any file (binary too), wherever they are.
PRIVATE_KEY_MARKERS = (
    b"-----BEGIN RSA PRIVATE KEY", b"-----BEGIN OPENSSH PRIVATE KEY", b"-----BEGIN PRIVATE KEY",
    b"-----BEGIN EC PRIVATE KEY", b"-----BEGIN DSA PRIVATE KEY", b"-----BEGIN ENCRYPTED PRIVATE KEY",
    b"-----BEGIN PGP PRIVATE KEY BLOCK", b'"private_key_id"',
)
_MARKER_OVERLAP = max(len(m) for m in PRIVATE_KEY_MARKERS) - 1

# detect-secrets' detectors of one provider's format: precise, so they run on every text file.
_AWS, _ARTIFACTORY, _AZURE, _BASIC_AUTH = AWSKeyDetector(), ArtifactoryDetector(), AzureStorageKeyDetector(), BasicAuthDetector()
_GITHUB, _GITLAB, _JWT, _MAILCHIMP, _NPM = (GitHubTokenDetector(), GitLabTokenDetector(), JwtTokenDetector(),
                                             MailchimpDetector(), NpmDetector())
_OPENAI, _PRIVATE_KEY, _PYPI, _SENDGRID = OpenAIDetector(), PrivateKeyDetector(), PypiTokenDetector(), SendGridDetector()
_SLACK, _SQUARE, _STRIPE, _TELEGRAM = SlackDetector(), SquareOAuthDetector(), StripeDetector(), TelegramBotTokenDetector()

# The project's rules: credentials detect-secrets has no detector for.
_NETRC = ("netrc credentials", re.compile(r"\bmachine\s+\S+\s+login\s+\S+\s+password\s+\S+"))
_REGISTRY = ("registry auth token", re.compile(
    r"""(?:npmAuthToken|_authToken|_auth|_password|"auth")["']?\s*[:=]\s*["']?[A-Za-z0-9+/=_.\-]{16,}"""))
_AWS_SECRET = ("AWS secret access key", re.compile(
    r"aws.{0,20}?(?:secret|key).{0,20}?[=:]\s*['\"]?[0-9a-zA-Z/+]{40}(?![0-9a-zA-Z/+])", re.IGNORECASE))
_SA_KEY = ("service account private key", re.compile(r'"private_key"\s*:\s*"-----BEGIN'))
_HF = ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{34,}\b"))
_GOOGLE = ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"))

# Each literal anchor and the checks that need it: a hit runs only those (a list of image URLs
# runs the basic-auth check on each line, not all of them).
_BY_ANCHOR: dict[bytes, tuple] = {}
for _anchors, _checks in (
    ((b"A3T", b"ABIA", b"ACCA", b"AKIA", b"ASIA"), (_AWS,)),
    ((b"aws", b"AWS", b"Aws"), (_AWS, _AWS_SECRET)),
    ((b"AKC",), (_ARTIFACTORY,)),
    ((b"AccountKey=",), (_AZURE,)),
    ((b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_"), (_GITHUB,)),
    ((b"glpat-", b"gldt-", b"glrt-", b"glptt-", b"glcbt-", b"glimt-", b"glagent-", b"glsoat-", b"glft-"), (_GITLAB,)),
    ((b"eyJ",), (_JWT,)),
    ((b"-us",), (_MAILCHIMP,)),
    ((b"npm_", b"_authToken", b"npmAuthToken", b"_auth", b"_AUTH", b'"auth"', b"_password", b"_PASSWORD"),
     (_NPM, _REGISTRY)),
    ((b"pypi-Ag",), (_PYPI,)),
    ((b"SG.",), (_SENDGRID,)),
    ((b"xoxa-", b"xoxb-", b"xoxp-", b"xoxo-", b"xoxs-", b"xoxr-", b"hooks.slack.com"), (_SLACK,)),
    ((b"sq0csp-",), (_SQUARE,)),
    ((b"rk_live_", b"sk_live_"), (_STRIPE,)),
    ((b"T3BlbkFJ",), (_OPENAI,)),
    ((b"-----BEGIN",), (_PRIVATE_KEY,)),
    ((b"private_key",), (_SA_KEY, _PRIVATE_KEY)),
    ((b"hf_",), (_HF,)),
    ((b"AIza",), (_GOOGLE,)),
    ((b":AA",), (_TELEGRAM,)),
    ((b"machine ", b"machine\t"), (_NETRC,)),
):
    for _a in _anchors:
        _BY_ANCHOR[_a] = _BY_ANCHOR.get(_a, ()) + _checks

# Files whose lines are settings: the keyword detector (``password = ...``) runs on them.
_SETTINGS_TYPES = {FileType.YAML: FileType.YAML, FileType.INI: FileType.INI, FileType.CONFIG: FileType.CONFIG,
                   FileType.PROPERTIES: FileType.PROPERTIES, FileType.TOML: FileType.TOML}
_NOT_SETTINGS = {  # code, notebooks, documents, tabular data
    ".py", ".pyi", ".pyx", ".ipynb", ".js", ".mjs", ".ts", ".tsx", ".jsx", ".java", ".go", ".rs", ".c", ".h",
    ".cc", ".cpp", ".hpp", ".cu", ".r", ".jl", ".scala", ".sql", ".md", ".rst", ".tex", ".html", ".htm",
    ".css", ".svg", ".xml", ".csv", ".tsv", ".jsonl", ".ndjson", ".log", ".json", ".map", ".po", ".pot",
}
_KEYWORD = KeywordDetector()
_PLACEHOLDERS = re.compile(r"(?i)^(?:x+|\*+|\.+|-+|none|null|true|false|changeme|change_me|example|"
                           r"placeholder|your[_-].*|<.*>|\{.*\}|\$.*|%\(.*|todo|tbd|secret|password|pass|passwd)$")
# A setting that names a secret rather than holding it: secret_name, password_file, api_key_id ...
_NAMES_A_SECRET = re.compile(
    r"(?i)(?:key|pass(?:word|wd)?|pwd|secret)[_-]?(?:name|id|file|path|dir|ref|arn|version|env|var|len|length|"
    r"type|manager|store|scope|count|min|max|policy|rotation)s?['\"]?\s*[:=]")

# One cheap search before any detector runs: the literal anchors the checks need, case-sensitive
# on the bytes as they are. Plain literals only: an alternation of literals is what the regex
# engine skips through fastest (hundreds of MB/s on data files; one character class in it, or a
# search of a lowered copy, costs a factor of ten).
_ANCHORS = re.compile(b"|".join(re.escape(a) for a in sorted(_BY_ANCHOR, key=len, reverse=True)))
# URLs are common in data (lists of image URLs): only one with a user and a password is a hit. A
# pattern with a literal start is searched as fast as a literal.
_URL_CREDENTIALS = re.compile(rb"://[^\s/:@]{1,256}:[^\s/@]{1,256}@")
# In notebooks, outputs' images are long base64 runs: no credential is that long without a
# separator, and random base64 is full of anchors, so such runs are skipped (10x faster there).
_BLOB = re.compile(rb"[A-Za-z0-9+/]{512,}")
_KEYWORD_ANCHOR = re.compile(rb"key|pass|pwd|secret|contrase")


@dataclass(frozen=True)
class Finding:
    kind: str  # e.g. "AWS Access Key", "Private Key", "Secret Keyword"
    line: int | None  # 1-based, where known

    def why(self) -> str:
        where = f" on line {self.line}" if self.line else ""
        return f"contains a secret ({self.kind}{where})"


def _keyword_file_type(rel: str) -> FileType | None:
    """The settings syntax of ``rel`` when its lines may be settings (``password = ...``), else None:
    code, notebooks, documents and tabular data are searched by the format detectors only."""
    name = os.path.basename(rel).lower()
    if heuristic.is_lock_file(name):  # package locks: names and versions, never settings
        return None
    ftype = determine_file_type(name)
    if ftype in _SETTINGS_TYPES:
        return ftype
    if os.path.splitext(name)[1] in _NOT_SETTINGS:
        return None
    return FileType.CONFIG  # env files under any name, .vars, .txt, no extension: key = value, key: value


class ContentScan:
    """Search one file's content, fed in chunks of any size; ``found`` is the first finding.

    ``rel`` is the file's path in the bundle (its name picks the keyword rules)."""

    def __init__(self, rel: str):
        self.rel = rel
        self.found: Finding | None = None
        self.binary: bool | None = None
        self._keyword_type = _keyword_file_type(rel)
        self._skip_blobs = rel.lower().endswith(".ipynb")
        self._marker_tail = b""
        self._tail = b""  # the last, unfinished line of the previous chunk
        self._lines_before = 0  # lines before _tail

    def feed(self, chunk: bytes) -> None:
        if self.found is not None or not chunk:
            return
        joined = self._marker_tail + chunk
        if any(m in joined for m in PRIVATE_KEY_MARKERS):
            self.found = Finding("Private Key", None)
            return
        self._marker_tail = joined[-_MARKER_OVERLAP:]
        if self.binary is None:
            self.binary = b"\x00" in chunk[:_BINARY_PROBE]
        if self.binary:
            return
        data = self._tail + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > 4 * WINDOW:  # one very long line: search it in pieces as it comes
            cut = len(data) - _OVERLAP_CHARS
        self._search(data[:cut], self._lines_before)
        self._lines_before += data.count(b"\n", 0, cut)
        self._tail = data[cut:]

    def close(self) -> Finding | None:
        if self.found is None and self.binary is False and self._tail:
            self._search(self._tail, self._lines_before)
        self._tail = b""
        return self.found

    # ---------------------------------------------------------------------------------------------
    def _search(self, data: bytes, lines_before: int) -> None:
        if not data or self.found is not None:
            return
        seen: set[int] = set()
        for start, end in _gaps(data) if self._skip_blobs else ((0, len(data)),):
            for m in _ANCHORS.finditer(data, start, end):
                if self._check_line(data, m.start(), lines_before, seen, checks=_BY_ANCHOR[m.group()]):
                    return
            for m in _URL_CREDENTIALS.finditer(data, start, end):
                if self._check_line(data, m.start(), lines_before, seen, checks=(_BASIC_AUTH,)):
                    return
        if self._keyword_type is not None:
            for m in _KEYWORD_ANCHOR.finditer(data.lower()):
                if self._check_line(data, m.start(), lines_before, seen, checks=None):
                    return

    def _check_line(self, data: bytes, pos: int, lines_before: int, seen: set, *, checks: tuple | None) -> bool:
        """Run ``checks`` (None: the keyword detector) on the line around ``pos`` (a window of it,
        for long lines)."""
        start = data.rfind(b"\n", 0, pos) + 1
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        lo = max(start, pos - WINDOW // 2)
        key = (lo, id(checks))
        if key in seen:
            return False
        seen.add(key)
        line = data[lo:min(end, lo + WINDOW)].decode("utf-8", errors="replace")
        kind = self._keyword_kind(line) if checks is None else _format_kind(line, checks)
        if kind:
            self.found = Finding(kind, lines_before + data.count(b"\n", 0, start) + 1)
            return True
        return False

    def _keyword_kind(self, line: str) -> str | None:
        if heuristic.is_indirect_reference(line) or _NAMES_A_SECRET.search(line):
            return None
        table = REGEX_BY_FILETYPE.get(self._keyword_type)
        for secret in _KEYWORD.analyze_string(line, denylist_regex_to_group=table):
            secret = (secret or "").strip()
            if (len(secret) < 6 or _PLACEHOLDERS.match(secret) or heuristic.is_templated_secret(secret)
                    or heuristic.is_prefixed_with_dollar_sign(secret) or heuristic.is_sequential_string(secret)
                    or heuristic.is_potential_uuid(secret) or heuristic.is_not_alphanumeric_string(secret)
                    or heuristic.is_likely_id_string(secret, line)):
                continue
            return _KEYWORD.secret_type
        return None


def _gaps(data: bytes) -> list[tuple[int, int]]:
    """The stretches of ``data`` between base64 blobs."""
    out, pos = [], 0
    for m in _BLOB.finditer(data):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, len(data)))
    return out


def _placeholder(secret: str) -> bool:
    """``user:pass@host``, ``password: changeme``: an example, not a credential."""
    return bool(_PLACEHOLDERS.match(secret.rsplit(":", 1)[-1].strip("@")))


def _format_kind(line: str, checks: tuple) -> str | None:
    for check in checks:
        if isinstance(check, tuple):  # a project rule
            kind, rule = check
            if rule.search(line):
                return kind
            continue
        for secret in check.analyze_string(line):
            if secret and not heuristic.is_templated_secret(secret) and not _placeholder(secret):
                return check.secret_type
    return None
