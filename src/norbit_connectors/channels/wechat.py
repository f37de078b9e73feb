"""WeChat Official Account messaging: declared, not available. Constructing :class:`WeChatConnector` raises
:class:`~norbit_connectors.ConnectorUnavailable`."""

from __future__ import annotations

from ._unavailable import unavailable

__all__ = ["WeChatConnector"]

WeChatConnector = unavailable("wechat", "WeChat Official Account messaging is not implemented yet")
