"""Customer-side connectors: the apps customers write from.

Implemented: :mod:`~norbit_connectors.channels.telegram`, :mod:`~norbit_connectors.channels.whatsapp` and
:mod:`~norbit_connectors.channels.messenger` (Messenger and Instagram). :func:`available` lists every app with its
status; :func:`load` returns a connector class by name, raising :class:`~norbit_connectors.ConnectorUnavailable`
for the apps that are not implemented (and for Google Business Messages, which Google shut down in 2024).

Other packages add connectors through the ``norbit_connectors.connectors`` entry-point group::

    [project.entry-points."norbit_connectors.connectors"]
    line = "my_package.line:LineConnector"
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Literal

from attrs import frozen

from ..exceptions import ConfigurationError, ConnectorUnavailable

__all__ = ["ENTRY_POINT_GROUP", "ConnectorInfo", "available", "load"]

ENTRY_POINT_GROUP = "norbit_connectors.connectors"

Status = Literal["implemented", "not_implemented", "shut_down", "third_party"]


@frozen(kw_only=True)
class ConnectorInfo:
    """What this installation knows of an app's connector."""

    name: str
    status: Status
    capabilities: frozenset[str] = frozenset()
    note: str = ""
    target: str | None = None  # "module:Class" when it can be loaded


_MEDIA = frozenset({"text_in", "text_out", "media_in", "media_out"})

_BUILTIN: dict[str, ConnectorInfo] = {
    info.name: info
    for info in (
        ConnectorInfo(
            name="telegram",
            status="implemented",
            capabilities=_MEDIA,
            note="Telegram Bot API: webhook with a secret token, photos and documents both ways",
            target="norbit_connectors.channels.telegram:TelegramConnector",
        ),
        ConnectorInfo(
            name="whatsapp",
            status="implemented",
            capabilities=_MEDIA | {"service_window", "templates"},
            note="WhatsApp Cloud API: signed webhooks, media, 24-hour window with a template fallback",
            target="norbit_connectors.channels.whatsapp:WhatsAppConnector",
        ),
        ConnectorInfo(
            name="messenger",
            status="implemented",
            capabilities=_MEDIA | {"instagram", "echoes", "service_window"},
            note="Messenger Platform for Facebook pages and Instagram accounts: signed webhooks, Send API",
            target="norbit_connectors.channels.messenger:MessengerConnector",
        ),
        ConnectorInfo(name="line", status="not_implemented", note="LINE Messaging API: not implemented yet"),
        ConnectorInfo(name="viber", status="not_implemented", note="Viber REST bot API: not implemented yet"),
        ConnectorInfo(
            name="wechat", status="not_implemented", note="WeChat Official Account messaging: not implemented yet"
        ),
        ConnectorInfo(name="x", status="not_implemented", note="X (Twitter) direct messages: not implemented yet"),
        ConnectorInfo(
            name="google_business_messages",
            status="shut_down",
            note="Google shut Google Business Messages down in 2024; there is nothing left to connect to",
        ),
        ConnectorInfo(name="zendesk", status="not_implemented", note="Zendesk: not implemented yet"),
        ConnectorInfo(name="email", status="not_implemented", note="email piping: not implemented yet"),
    )
}

_ALIASES = {"twitter": "x", "instagram": "messenger", "gbm": "google_business_messages", "mail": "email"}


def _third_party() -> dict[str, ConnectorInfo]:
    found: dict[str, ConnectorInfo] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ConnectorInfo(
            name=ep.name,
            status="third_party",
            note=f"provided by {ep.dist.name if ep.dist is not None else 'an installed package'}",
            target=ep.value,
        )
    return found


def available() -> dict[str, ConnectorInfo]:
    """Every known app by name: the built-in ones (whatever their status) and installed third-party ones."""
    known = dict(_BUILTIN)
    for name, info in _third_party().items():
        if known.get(name, info).status != "implemented":
            known[name] = info  # an installed package fills a name we only declare
    return dict(sorted(known.items()))


def load(name: str) -> type[Any]:
    """The connector class for ``name`` ("telegram", "whatsapp", "messenger", or a third-party name).

    Raises ConnectorUnavailable for declared apps that are not implemented (or shut down), ConfigurationError for
    names nobody declares.
    """
    key = _ALIASES.get(name.lower(), name.lower())
    info = available().get(key)
    if info is None:
        raise ConfigurationError(f"no connector named {name!r}; known: {', '.join(available())}")
    if info.target is None:
        raise ConnectorUnavailable(key, info.note or "not implemented yet")
    module_name, _, attr = info.target.partition(":")
    try:
        module = importlib.import_module(module_name)
        target: Any = module
        for part in attr.split(".") if attr else ():
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"the {key!r} connector ({info.target}) cannot be loaded: {exc}") from None
    if not isinstance(target, type):
        raise ConfigurationError(f"the {key!r} entry point {info.target} is not a class")
    return target
