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
    description: Extra HTTP request headers.
    type: dict
    default: {}
  url_username:
    description: User name for HTTP basic authentication.
    type: str
  url_password:
    description: Password for HTTP basic authentication.
    type: str
  force_basic_auth:
    description: Send the basic authentication header with the first request instead of waiting for a 401.
    type: bool
    default: true
  bearer_token:
    description: Send C(Authorization) with this bearer token.
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
    basic authentication, never as part of the URL, and never shown in messages or results.
"""
