"""How the history names who wrote a version (core.acting records it on every write)."""

from __future__ import annotations

from core.acting import ANONYMOUS, DASHBOARD


def writer_label(writer: str | None, key_names: dict[str, str]) -> str:
    """`key_names`: the account's access keys (revoked ones too) by id. Another account's
    key (a grant or policy let it write here) is not named: its id is that account's."""
    if writer is None:
        return "Folio"
    if writer == DASHBOARD:
        return "Dashboard"
    if writer == ANONYMOUS:
        return "Anonymous"
    name = key_names.get(writer)
    if name is None:
        return "Another account's key"
    return f"Key {writer} ({name})" if name else f"Key {writer}"
