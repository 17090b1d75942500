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
        state = {"transferred": 0, "resumed": False}
        hasher = [hashlib.new(algorithm)]

        def prepare():
            if resume and os.path.exists(partial):
                h = hashlib.new(algorithm)
                with open(partial, "rb") as f:
                    for chunk in iter(lambda: f.read(CHUNK), b""):
                        h.update(chunk)
                hasher[0] = h
                return os.path.getsize(partial)
            with open(partial, "wb"):
                pass
            hasher[0] = hashlib.new(algorithm)
            return 0

        offset = [prepare()]

        def attempt():
            headers = {"Range": "bytes=%d-" % offset[0]} if offset[0] else {}
            try:
                response = self._open(url, headers)
            except HTTPError as exc:  # 416: our partial is not a prefix of what the server has now
                if exc.code == 416 and offset[0]:
                    with open(partial, "wb"):
                        pass
                    hasher[0] = hashlib.new(algorithm)
                    offset[0] = 0
                    raise Interrupted("GET %s: the partial download does not fit the file; starting over" % safe_url(url))
                raise FetchError("GET %s answered HTTP %d" % (safe_url(url), exc.code))
            status = response.getcode()
            mode = "ab"
            if offset[0] and status == 206:
                content_range = response.headers.get("Content-Range", "")
                if not content_range.startswith("bytes %d-" % offset[0]):
                    mode = "wb"
                else:
                    state["resumed"] = True
            elif offset[0]:
                mode = "wb"  # the server ignored Range: start over
            if mode == "wb":
                hasher[0] = hashlib.new(algorithm)
                offset[0] = 0
            try:
                with open(partial, mode) as f:
                    while True:
                        try:
                            chunk = response.read(CHUNK)
                        except (socket.timeout, ConnectionError, HTTPException, ssl.SSLError) as exc:
                            f.flush()
                            raise Interrupted("GET %s: connection lost after %d bytes (%s)"
                                              % (safe_url(url), offset[0], exc))
                        if not chunk:
                            break
                        f.write(chunk)
                        hasher[0].update(chunk)
                        offset[0] += len(chunk)
                        state["transferred"] += len(chunk)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise FetchError("no space left on the device of %s after %d bytes of %s"
                                     % (os.path.dirname(partial), offset[0], safe_url(url)))
                raise
            finally:
                response.close()
            expected = response.headers.get("Content-Length")
            if status == 200 and expected is not None and offset[0] != int(expected):
                raise Interrupted("GET %s: got %d of %s bytes" % (safe_url(url), offset[0], expected))

        def attempt_resuming():
            if not resume and offset[0]:
                with open(partial, "wb"):
                    pass
                hasher[0] = hashlib.new(algorithm)
                offset[0] = 0
            attempt()

        self.with_retries("GET %s" % safe_url(url), attempt_resuming)
        return {"hexdigest": hasher[0].hexdigest(), "size": offset[0], "bytes_transferred": state["transferred"],
                "resumed": state["resumed"]}
