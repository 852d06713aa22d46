"""The node's address book: node id -> URL, as the Raft driver knows it.

Rules:
1. The book starts as the initial peers, overlaid with the replicated book
   (``MembersMachine.addresses``, restored with the snapshot), overlaid with
   the URLs of the ``add_learner`` entries still in the log: a configuration
   counts once appended, committed or not.
2. Appended entries (``learn``) and an installed snapshot (``restored``)
   only add or replace URLs; a removed member keeps its URL here (the member
   set, not the book, says who is in).
3. ``urls`` is one dict for the node's life, changed in place: whoever holds
   it (``RaftDriver.addresses``) sees every change.  Listeners get a copy each.
4. Membership listeners hear of every turn that changed the configuration or
   the book, before any message of that turn is sent; committed-membership
   listeners hear of every applied conf entry or installed snapshot once the
   committed member set is known (``MembersMachine.members`` is not None).
5. Committed conf entries go into the replicated book (``apply_conf``) in log
   order; without one (``members`` None) they are only read from the log.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from rakit.raft.messages import ENTRY_CONF, ConfState, Entry, decode_conf_entry
from rakit.statemachines.members import MembersMachine

MembershipListener = Callable[[ConfState, dict[str, str]], None]
CommittedMembershipListener = Callable[[int, tuple[str, ...], dict[str, str]], None]


class AddressBook:
    def __init__(
        self, initial: dict[str, str] | None, members: MembersMachine | None, entries: Sequence[Entry] = ()
    ) -> None:
        self.members = members
        self.urls: dict[str, str] = {**(initial or {}), **(members.addresses if members else {})}
        self.learn(entries)
        self._membership_listeners: list[MembershipListener] = []
        self._committed_listeners: list[CommittedMembershipListener] = []

    def learn(self, entries: Sequence[Entry]) -> bool:
        """Take the URLs of the ``add_learner`` entries among ``entries``; whether the book changed."""
        changed = False
        for entry in entries:
            if entry.kind != ENTRY_CONF:
                continue
            conf_entry = decode_conf_entry(entry.data)
            if conf_entry is None:
                continue
            change = conf_entry.change
            if change.op == "add_learner" and change.url and self.urls.get(change.node) != change.url:
                self.urls[change.node] = change.url
                changed = True
        return changed

    def apply_conf(self, entry: Entry) -> ConfState | None:
        """A committed conf entry: into the replicated book (rule 5); the configuration it yields."""
        if self.members is None:
            return None
        conf_entry = decode_conf_entry(entry.data)
        if conf_entry is None:
            return None
        self.members.apply_conf(entry.index, conf_entry)
        return conf_entry.conf

    def restored(self) -> None:
        """A snapshot was installed: take the replicated book it brought."""
        if self.members is not None:
            self.urls.update(self.members.addresses)

    def holder_of(self, url: str, members: Collection[str], besides: str) -> str | None:
        """The member other than ``besides`` whose URL is ``url`` (trailing slashes aside), if any."""
        wanted = url.rstrip("/")
        for node, known in self.urls.items():
            if node in members and node != besides and known.rstrip("/") == wanted:
                return node
        return None

    # -- listeners -------------------------------------------------------------------

    def add_membership_listener(self, listener: MembershipListener) -> None:
        self._membership_listeners.append(listener)

    def add_committed_membership_listener(self, listener: CommittedMembershipListener) -> None:
        self._committed_listeners.append(listener)

    def appended(self, entries: Sequence[Entry], conf_changed: bool, conf_state: ConfState) -> None:
        """A Ready appended ``entries`` (``conf_changed``: it changed the configuration, now ``conf_state``):
        learn, then tell."""
        if (self.learn(entries) or conf_changed) and self._membership_listeners:
            for listener in self._membership_listeners:
                listener(conf_state, dict(self.urls))

    def committed(self) -> None:
        """A conf entry was applied or a snapshot installed: tell the committed-membership listeners."""
        members = self.members
        if members is None or members.members is None:
            return
        for listener in self._committed_listeners:
            listener(members.generation, members.members, dict(self.urls))


__all__ = ["AddressBook", "CommittedMembershipListener", "MembershipListener"]
