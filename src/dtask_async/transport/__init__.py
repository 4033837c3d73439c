"""The wire layer: addresses, channels, metadata, credentials and error mapping.

This package is the only place that knows about gRPC channels, metadata and
status codes.
"""

from ._address import (
    DEFAULT_ADDRESS as DEFAULT_ADDRESS,
    Target as Target,
    parse_address as parse_address,
)
from ._auth import (
    DEFAULT_SCOPE as DEFAULT_SCOPE,
    AccessTokenProvider as AccessTokenProvider,
    TokenCredentialLike as TokenCredentialLike,
)
from ._connection import Connection as Connection
from ._errors import translate_rpc_error as translate_rpc_error
from ._metadata import USER_AGENT as USER_AGENT, MetadataInterceptor as MetadataInterceptor
from ._options import (
    DEFAULT_MAX_MESSAGE_BYTES as DEFAULT_MAX_MESSAGE_BYTES,
    ChannelOptions as ChannelOptions,
)

__all__ = (
    "DEFAULT_ADDRESS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_SCOPE",
    "USER_AGENT",
    "AccessTokenProvider",
    "ChannelOptions",
    "Connection",
    "MetadataInterceptor",
    "Target",
    "TokenCredentialLike",
    "parse_address",
    "translate_rpc_error",
)
