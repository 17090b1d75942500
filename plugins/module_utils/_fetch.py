# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP(S) downloads into a content-addressed store: hashed while streaming, resumed with HTTP
Range, retried with backoff on transient errors, never half-written (private to seedops.deploy).

Uses ansible.module_utils.urls only, so targets need nothing beyond Python.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import ssl
import time

from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlsplit, urlunsplit

from ansible.module_utils.urls import open_url

CHUNK = 1024 * 1024
FATAL_STATUS = {400: "bad request", 401: "unauthorized (wrong or missing credentials)",
                403: "forbidden", 404: "not found", 405: "method not allowed", 410: "gone"}


class FetchError(Exception):
    """A download that failed for good; the message names the URL (without credentials)."""


class Interrupted(Exception):
    """A transient failure: worth a retry, resuming where the bytes stopped."""


def safe_url(url):
    """The URL without user:password@ (for messages and records)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = "[%s]" % host
    if parts.port:
        host = "%s:%d" % (host, parts.port)
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def url_file_name(url):
    return os.path.basename(unquote(urlsplit(url).path.rstrip("/")))


def url_argument_spec():
    """The HTTP(S) connection options, as the seedops.deploy.url doc fragment documents them."""
    return dict(
        headers=dict(type="dict", default={}),
        url_username=dict(type="str"),
        url_password=dict(type="str", no_log=True),
        force_basic_auth=dict(type="bool", default=True),
        bearer_token=dict(type="str", no_log=True),
        client_cert=dict(type="path"),
        client_key=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
        use_proxy=dict(type="bool", default=True),
        timeout=dict(type="int", default=30),
    )


class Fetcher:
    """Holds the connection settings of one module run."""

    def __init__(self, headers=None, url_username=None, url_password=None, force_basic_auth=False,
                 bearer_token=None, validate_certs=True, use_proxy=True, timeout=30, client_cert=None,
                 client_key=None, retries=3, retry_delay=1.0, sleep=time.sleep):
        self.headers = dict(headers or {})
        if bearer_token:
            self.headers["Authorization"] = "Bearer %s" % bearer_token
        self.headers.setdefault("Accept-Encoding", "identity")
        self.auth = dict(url_username=url_username, url_password=url_password, force_basic_auth=force_basic_auth)
        self.validate_certs = validate_certs
        self.use_proxy = use_proxy
        self.timeout = timeout
        self.client_cert = client_cert
        self.client_key = client_key
        self.retries = retries
        self.retry_delay = retry_delay
        self.sleep = sleep
        self.attempts = 0

    @classmethod
    def from_params(cls, params):
        """A Fetcher for a module's params: the url_argument_spec() options, retries and retry_delay."""
        settings = dict((name, params[name]) for name in url_argument_spec())
        return cls(retries=params["retries"], retry_delay=params["retry_delay"], **settings)

    def _open(self, url, extra_headers=None):
        headers = dict(self.headers)
        headers.update(extra_headers or {})
        auth = dict(self.auth)
        parts = urlsplit(url)
        if parts.username is not None:  # user:password@ in the URL: used as basic auth, never sent in the URL
            auth["url_username"] = auth["url_username"] or unquote(parts.username)
            auth["url_password"] = auth["url_password"] or unquote(parts.password or "")
            url = safe_url(url)
        try:
            return open_url(url, headers=headers, use_proxy=self.use_proxy, timeout=self.timeout,
                            validate_certs=self.validate_certs, client_cert=self.client_cert,
                            client_key=self.client_key, decompress=False, http_agent="seedops.deploy",
                            **auth)
        except HTTPError as exc:
            code = exc.code
            if code in FATAL_STATUS:
                raise FetchError("GET %s answered HTTP %d %s" % (safe_url(url), code, FATAL_STATUS[code]))
            if code == 416:
                raise
            raise Interrupted("GET %s answered HTTP %d" % (safe_url(url), code))
        except (URLError, socket.timeout, ConnectionError, HTTPException, ssl.SSLError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(reason):
                raise FetchError("GET %s: TLS certificate verification failed (%s); fix the server's certificate or "
                                 "the CA bundle, or set validate_certs: false" % (safe_url(url), reason))
            raise Interrupted("GET %s failed: %s" % (safe_url(url), reason))

    def with_retries(self, what, action):
        """Run action(); on Interrupted, retry up to `retries` times with exponential backoff."""
        failures = 0
        while True:
            self.attempts += 1
            try:
                return action()
            except Interrupted as exc:
                failures += 1
                if failures > self.retries:
                    raise FetchError("%s; gave up after %d attempts" % (exc, failures))
                self.sleep(self.retry_delay * (2 ** (failures - 1)))

    def get_text(self, url, limit=1 << 20):
        """A small text document (a checksum file)."""
        def action():
            response = self._open(url)
            try:
                data = response.read(limit + 1)
            except (socket.timeout, ConnectionError, HTTPException) as exc:
                raise Interrupted("GET %s failed while reading: %s" % (safe_url(url), exc))
            if len(data) > limit:
                raise FetchError("%s is larger than %d bytes; is it really a checksum file?" % (safe_url(url), limit))
            return data.decode("utf-8", "replace")
        return self.with_retries("GET %s" % safe_url(url), action)

    def download(self, url, partial, algorithm, resume=True):
        """Stream url into the file `partial`, hashing as the bytes arrive.

        An existing `partial` is continued with HTTP Range when `resume` is set and the server
        answers 206; it is started over when the server answers 200. Returns a dict: hexdigest,
        size, bytes_transferred, resumed. The caller checks the digest and renames the file.
        """
        return Download(self, url, partial, algorithm, resume).run()


class Download:
    """One download of `url` into the file `partial`, over as many attempts as the Fetcher allows.

    Between attempts `partial` holds exactly `offset` bytes and `hasher` has seen exactly those
    bytes, so an attempt either goes on at `offset` (HTTP Range) or starts over, never both.
    """

    def __init__(self, fetcher, url, partial, algorithm, resume=True):
        self.fetcher = fetcher
        self.url = url
        self.shown = safe_url(url)
        self.partial = partial
        self.algorithm = algorithm
        self.resume = resume
        self.hasher = hashlib.new(algorithm)
        self.offset = 0
        self.transferred = 0
        self.resumed = False

    def run(self):
        if self.resume and os.path.exists(self.partial):
            self.take_over_partial()
        else:
            self.start_over()
        self.fetcher.with_retries("GET %s" % self.shown, self.attempt)
        return {"hexdigest": self.hasher.hexdigest(), "size": self.offset, "bytes_transferred": self.transferred,
                "resumed": self.resumed}

    def start_over(self):
        """Empty `partial`: the next byte written is the file's first."""
        with open(self.partial, "wb"):
            pass
        self.hasher = hashlib.new(self.algorithm)
        self.offset = 0

    def take_over_partial(self):
        """Go on from what an earlier run left in `partial`: hash those bytes, continue at their end."""
        self.hasher = hashlib.new(self.algorithm)
        self.offset = 0
        with open(self.partial, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                self.hasher.update(chunk)
                self.offset += len(chunk)

    def continues_at_offset(self, response):
        """Whether the response carries the bytes from `offset` on (206 with a matching Content-Range)."""
        return response.getcode() == 206 and \
            response.headers.get("Content-Range", "").startswith("bytes %d-" % self.offset)

    def attempt(self):
        """One request: resume at `offset` when allowed and the server agrees, else start over."""
        if self.offset and not self.resume:
            self.start_over()
        response = self.request()
        try:
            if self.offset:
                if self.continues_at_offset(response):
                    self.resumed = True
                else:  # the server ignored Range or sent another range: start over
                    self.start_over()
            self.receive(response)
        finally:
            response.close()
        expected = response.headers.get("Content-Length")
        if response.getcode() == 200 and expected is not None and self.offset != int(expected):
            raise Interrupted("GET %s: got %d of %s bytes" % (self.shown, self.offset, expected))

    def request(self):
        headers = {"Range": "bytes=%d-" % self.offset} if self.offset else {}
        try:
            return self.fetcher._open(self.url, headers)
        except HTTPError as exc:
            if exc.code == 416 and self.offset:  # our partial is not a prefix of what the server has now
                self.start_over()
                raise Interrupted("GET %s: the partial download does not fit the file; starting over" % self.shown)
            raise FetchError("GET %s answered HTTP %d" % (self.shown, exc.code))

    def receive(self, response):
        """Append the response body to `partial`, hashing it; Interrupted when the connection drops."""
        try:
            with open(self.partial, "ab") as f:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except (socket.timeout, ConnectionError, HTTPException, ssl.SSLError) as exc:
                        f.flush()
                        raise Interrupted("GET %s: connection lost after %d bytes (%s)" % (self.shown, self.offset, exc))
                    if not chunk:
                        break
                    f.write(chunk)
                    self.hasher.update(chunk)
                    self.offset += len(chunk)
                    self.transferred += len(chunk)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise FetchError("no space left on the device of %s after %d bytes of %s"
                                 % (os.path.dirname(self.partial), self.offset, self.shown))
            raise
