# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """HTTP(S) request options: headers, authentication, TLS, proxies and timeouts.

    The argument spec that goes with it is _fetch.url_argument_spec() in module_utils."""

    DOCUMENTATION = r"""
options:
  headers:
    description:
      - Extra HTTP request headers. Treated as credentials (API keys, tokens) - sent only to the scheme, host and port
        of the URL, never after a redirect to another one, and hidden from the output (C(no_log)).
    type: dict
    default: {}
  url_username:
    description: User name for HTTP basic authentication. Sent only to the scheme, host and port of the URL.
    type: str
  url_password:
    description: Password for HTTP basic authentication. Sent only to the scheme, host and port of the URL.
    type: str
  force_basic_auth:
    description: Send the basic authentication header with the first request instead of waiting for a 401.
    type: bool
    default: true
  bearer_token:
    description: Send C(Authorization) with this bearer token, only to the scheme, host and port of the URL.
    type: str
  client_cert:
    description: PEM client certificate for TLS client authentication.
    type: path
  client_key:
    description: PEM private key for O(client_cert), when not in the same file.
    type: path
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  use_proxy:
    description: Use the proxies named by the environment (C(https_proxy), C(http_proxy), C(no_proxy)).
    type: bool
    default: true
  timeout:
    description: Seconds to wait for a connection and for each read.
    type: int
    default: 30
notes:
  - User name and password may also be given in the URL (C(https://user:password@host/...)); they are then sent as
    basic authentication, never as part of the URL. The password is shown as C(********) in messages and results.
  - Redirects (301, 302, 303, 307, 308, also relative ones) are followed by the module, at most 10. While they stay on
    the scheme, host and port of the URL, the credentials (basic authentication, the bearer token, O(headers)) go
    along; after a redirect to another scheme, host or port (C(http://) to C(https://) included) none is sent, also
    not when a later redirect leads back. A redirect from C(https://) to C(http://) is refused. HTTP C(Range) (to
    resume a download) goes along every redirect.
"""
