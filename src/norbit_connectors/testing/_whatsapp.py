"""The WhatsApp Cloud API emulator: the WhatsApp side of :class:`~norbit_connectors.testing._meta.MetaEmulator`,
which also plays Messenger and Instagram (one Graph API serves them all)."""

from __future__ import annotations

from ._meta import MetaEmulator, SentGraphMessage, WhatsAppCustomer

__all__ = ["SentGraphMessage", "WhatsAppCustomer", "WhatsAppEmulator"]

#: The same emulator; use ``whatsapp_customer()``, ``whatsapp_text()``, ``add_template()`` and ``sent_to()``.
WhatsAppEmulator = MetaEmulator
