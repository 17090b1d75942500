# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP(S) downloads into a content-addressed store: hashed while streaming, resumed with HTTP
Range, retried with backoff on transient errors, never half-written (private to seedops.deploy).

Redirects are followed here, not inside urllib, so that credentials (basic auth, the bearer
token, the user's headers, user:password@ in the URL) go only to the origin - scheme, host and
port - of the URL given, https never falls back to plain http, and the number of hops is limited.
URLs are shown only through safe_url(): password and credential-like query values masked.

Uses ansible.module_utils.urls only, so targets need nothing beyond Python.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import ssl
import string
import time

from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import quote, unquote, unquote_plus, urljoin, urlsplit, urlunsplit

from ansible.module_utils.urls import open_url

CHUNK = 1024 * 1024
FATAL_STATUS = {400: "bad request", 401: "unauthorized (wrong or missing credentials)",
                403: "forbidden", 404: "not found", 405: "method not allowed", 410: "gone"}
REDIRECT_STATUS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10
DEFAULT_PORTS = {"http": 80, "https": 443}
REDACTED = "********"
# A query parameter whose name has a word like these carries a credential (presigned URLs, private_token=,
# X-Amz-Signature=, sig=, api_key=, access_token=, ...): its value is never shown.
SECRET_WORD = re.compile(r"^(?:[a-z0-9]*(?:token|key|secret|signature|password)|sig|pass|passwd|pwd|auth|authorization"
                         r"|credentials?|session(?:id)?|jwt|hmac)$")


class FetchError(Exception):
    """A download that failed for good; the message names the URL (without credentials)."""


class Interrupted(Exception):
    """A transient failure: worth a retry, resuming where the bytes stopped."""


def split_userinfo(url):
    """(url without user:password@, user name or None, password or None); names and passwords unquoted."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url, None, None
    user, colon, password = userinfo.partition(":")
    bare = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return bare, unquote(user), unquote(password) if colon else None


def secret_query_name(name):
    """Whether a query parameter of this name carries a credential (token, signature, key, ...)."""
    return any(SECRET_WORD.match(word) for word in re.split(r"[^a-z0-9]+", unquote_plus(name).lower()) if word)


def _query_items(query):
    """[(raw name, raw value or None)] of a query string, in order, undecoded."""
    items = []
    for piece in query.split("&"):
        name, equals, value = piece.partition("=")
        items.append((name, value if equals else None))
    return items


def safe_url(url):
    """The URL as the module shows it (messages, results): a password in user:password@ (or a
    user name alone, often a token) and the values of credential-like query parameters are
    replaced by ********. Everything else stays as given."""
    if not url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        netloc = "%s:%s@%s" % (user, REDACTED, hostport) if colon else "%s@%s" % (REDACTED, hostport)
    query = parts.query
    if query:
        query = "&".join(name if value is None else "%s=%s" % (name, REDACTED if value and secret_query_name(name) else value)
                         for name, value in _query_items(query))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url):
    """The strings safe_url() hides in url, as given and decoded: for AnsibleModule.no_log_values,
    so that Ansible masks them everywhere in the module's output, its invocation included."""
    secrets = set()
    if not url:
        return secrets
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        secrets.update((password, unquote(password)) if colon else (user, unquote(user)))
    for name, value in _query_items(parts.query):
        if value and secret_query_name(name):
            secrets.update((value, unquote_plus(value)))
    secrets.discard("")
    return secrets


def redact(text, url):
    """text (an exception's, say) with whatever safe_url() hides in url masked."""
    text = str(text)
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_all(text, urls):
    """text with whatever safe_url() hides in any of urls masked."""
    text = str(text)
    for url in urls:
        text = redact(text, url)
    return text


def shown_chain(chain):
    """A redirect chain as messages show it: "url -> next -> ...", each through safe_url()."""
    return " -> ".join(safe_url(url) for url in chain)


def url_scheme(url):
    return urlsplit(url or "").scheme.lower()


def url_origin(url):
    """(scheme, host, port) - what decides whether credentials go along; default ports filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise FetchError("%s has an invalid port; correct the URL" % safe_url(url))
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def origin_text(origin):
    scheme, host, port = origin
    if ":" in host:
        host = "[%s]" % host
    return "%s://%s:%d" % (scheme, host, port) if port != DEFAULT_PORTS.get(scheme) else "%s://%s" % (scheme, host)


def checksum_source_problem(url, checksum_url, allow_unverified=False):
    """Why checksum_url cannot vouch for url, or None.

    A checksum list is only as trustworthy as the way it travels: one fetched over plain http://
    can be altered together with an artifact that comes over plain http:// too. So an http://
    url needs an https:// checksum_url, unless allow_unverified (or a checksum given inline)."""
    if not url or not checksum_url or allow_unverified:
        return None
    if url_scheme(url) == "http" and url_scheme(checksum_url) != "https":
        return ("refusing to verify %s (plain http://) against %s: a checksum list fetched without TLS can be altered "
                "along with the artifact. Serve checksum_url over https://, give the digest inline with checksum, or "
                "set allow_unverified: true" % (safe_url(url), safe_url(checksum_url)))
    return None


def url_file_name(url):
    return os.path.basename(unquote(urlsplit(url).path.rstrip("/")))


def url_argument_spec():
    """The HTTP(S) connection options, as the seedops.deploy.url doc fragment documents them."""
    return dict(
        headers=dict(type="dict", default={}, no_log=True),
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
        """GET url and return the response, following redirects here: extra_headers (Range) go to
        every hop, credentials only while the chain stays on the origin (scheme, host, port) of url;
        once it left, no later hop gets them. Refuses https -> http and more than MAX_REDIRECTS hops."""
        first, user, password = split_userinfo(url)  # chain[0] stays url as given: messages show user:********@
        auth = dict(self.auth)
        if user is not None:  # user:password@ in the URL: used as basic auth, never sent in the URL
            auth["url_username"] = auth["url_username"] or user
            auth["url_password"] = auth["url_password"] or (password or "")
        if url_scheme(first) not in DEFAULT_PORTS:
            raise FetchError("%s is not an http:// or https:// URL; correct the URL" % safe_url(url))
        home = url_origin(first)
        chain = [url]
        trusted = True
        while True:
            try:
                return self._get(chain[-1], extra_headers, auth if trusted else None)
            except HTTPError as exc:
                if exc.code == 416:
                    raise
                if exc.code not in REDIRECT_STATUS:
                    withheld = not trusted and bool(auth["url_username"] or set(self.headers) - {"Accept-Encoding"})
                    raise self._status_error(exc.code, chain, withheld, home)
                target = self._redirect_target(exc, chain)
                chain.append(target)
                trusted = trusted and url_origin(target) == home
            except ValueError as exc:  # a URL urllib cannot use
                raise FetchError("GET %s: %s; correct the URL" % (shown_chain(chain), redact_all(exc, chain)))
            except (URLError, socket.timeout, ConnectionError, HTTPException, ssl.SSLError) as exc:
                reason = redact_all(getattr(exc, "reason", exc), chain)
                if isinstance(getattr(exc, "reason", exc), ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in reason:
                    raise FetchError("GET %s: TLS certificate verification failed (%s); fix the server's certificate or "
                                     "the CA bundle, or set validate_certs: false" % (shown_chain(chain), reason))
                raise Interrupted("GET %s failed: %s" % (shown_chain(chain), reason))

    def _get(self, url, extra_headers, auth):
        """One request, redirects not followed; auth None: without any credentials (another origin)."""
        if auth is None:
            headers = {"Accept-Encoding": "identity"}
            auth = dict(url_username=None, url_password=None, force_basic_auth=False)
        else:
            headers = dict(self.headers)
        headers.update(extra_headers or {})
        return open_url(split_userinfo(url)[0], headers=headers, use_proxy=self.use_proxy, timeout=self.timeout,
                        validate_certs=self.validate_certs, client_cert=self.client_cert,
                        client_key=self.client_key, decompress=False, http_agent="seedops.deploy",
                        follow_redirects="none", **auth)

    @staticmethod
    def _redirect_target(exc, chain):
        """The URL a 3xx answer to chain[-1] leads to (a relative Location resolved against it, any
        user:password@ in it dropped); FetchError when it must not be followed."""
        code = exc.code
        location = exc.headers.get("Location") if exc.headers is not None else None
        exc.close()
        here = chain[-1]
        if not location:
            raise FetchError("GET %s answered HTTP %d without a Location header; fix the redirect on the server, or "
                             "give the URL it should lead to in url" % (shown_chain(chain), code))
        # As urllib does: a Location is decoded as ISO-8859-1, so percent-encode what is not ASCII.
        location = quote(location.strip(), safe=string.punctuation, encoding="iso-8859-1")
        target = split_userinfo(urljoin(here, location))[0]
        scheme = url_scheme(target)
        if scheme not in DEFAULT_PORTS:
            raise FetchError("GET %s answered HTTP %d to %s: only http:// and https:// redirects are followed; fix the "
                             "redirect on the server, or give the artifact's URL in url"
                             % (shown_chain(chain), code, safe_url(target)))
        if url_scheme(here) == "https" and scheme == "http":
            raise FetchError("GET %s redirected to %s: refusing to follow a redirect from https:// to plain http:// "
                             "(the bytes would travel without TLS). Fix the redirect on the server, or give the http:// "
                             "URL in url yourself, with a checksum" % (shown_chain(chain), safe_url(target)))
        if len(chain) > MAX_REDIRECTS:
            raise FetchError("GET %s: more than %d redirects (%s); fix the redirects on the server, or give the final URL "
                             "in url" % (safe_url(chain[0]), MAX_REDIRECTS, shown_chain(chain + [target])))
        url_origin(target)  # a target with an invalid port fails here, naming it
        return target

    @staticmethod
    def _status_error(code, chain, withheld, home):
        """The exception for an HTTP error status at the end of chain: FetchError when retrying cannot
        help, Interrupted when it may. `withheld`: credentials were kept back after leaving `home`."""
        shown = shown_chain(chain)
        if code in FATAL_STATUS:
            message = "GET %s answered HTTP %d %s" % (shown, code, FATAL_STATUS[code])
            if withheld and code in (401, 403):
                message += ("; credentials are sent only to %s, never after a redirect to another scheme, host or port: "
                            "give the final URL in url" % origin_text(home))
            return FetchError(message)
        if 300 <= code < 400:
            return FetchError("GET %s answered HTTP %d; only the redirects 301, 302, 303, 307 and 308 are followed"
                              % (shown, code))
        return Interrupted("GET %s answered HTTP %d" % (shown, code))

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
        return self.get_text_from(url, limit)[0]

    def get_text_from(self, url, limit=1 << 20):
        """(text, the URL that answered after any redirects) of a small text document."""
        def action():
            response = self._open(url)
            try:
                data = response.read(limit + 1)
            except (socket.timeout, ConnectionError, HTTPException) as exc:
                raise Interrupted("GET %s failed while reading: %s" % (safe_url(url), exc))
            if len(data) > limit:
                raise FetchError("%s is larger than %d bytes; is it really a checksum file?" % (safe_url(url), limit))
            return data.decode("utf-8", "replace"), safe_url(response.geturl())
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
