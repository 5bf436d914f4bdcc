"""The release push and the phúc khảo notice: registrations become outbox messages.

At the release (the embargo passing while the server runs, or a start after it), every
registration of that year is turned into one message, registrations in order, in
batches; each batch is queued and marked pushed in one transaction, and the message
carries the unique key ``push:<user>:<sbd>:<year>``, so a restart before or during the
push resumes where it stopped and never sends one twice. When a new snapshot of a year
is served and ``DIEMTHI_ZALO_NOTIFY_CHANGES=1``, registered students whose candidate's
scores changed get one notice (old → new). Only the process holding the sender lease
runs this; it only writes to the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import lru_cache

import orjson

from .. import diff, store
from ..lookup import Lookup
from ..settings import Settings
from . import release, replies
from .channels import split_text, transaction_payload
from .conversation import Conversation
from .outbox import AsyncStore, NewMessage, Registration

log = logging.getLogger("diemthi.chatbot.push")

BATCH = 200


class Pusher:
    def __init__(self, settings: Settings, lookup: Lookup, conversation: Conversation,
                 db: AsyncStore):
        self.settings = settings
        self.lookup = lookup
        self.conversation = conversation
        self.db = db

    async def tick(self) -> int:
        """Queue what is due now; returns the registrations handled."""
        handled = 0
        now = time.time()
        for year in await self.db.run(self.db.store.push_years):
            served = self.lookup.served.get(year)
            if served is None or release.embargoed(self.settings, now, year):
                continue
            batch = await self.db.run(self.db.store.unpushed, year, BATCH)
            if batch:
                done = [(reg, await self._push(reg)) for reg in batch]
                await self.db.run(self.db.store.pushed, done, served.id, time.time())
                handled += len(batch)
                log.info("release push %d: %d registrations queued", year, len(batch))
        if self.settings.zalo_notify_changes:
            for year, served in list(self.lookup.served.items()):
                batch = await self.db.run(self.db.store.stale, year, served.id, BATCH)
                if batch:
                    done = [(reg, await self._notice(reg, served.id)) for reg in batch]
                    await self.db.run(self.db.store.pushed, done, served.id, time.time())
                    handled += len(batch)
        return handled

    async def _push(self, reg: Registration) -> NewMessage:
        text, doc = await self.conversation.push_text(reg.year, reg.sbd)
        template = None
        if doc is not None:
            template = orjson.dumps(self.template(reg.year, doc)).decode()
        return NewMessage(reg.user_id, "push", split_text(text)[0], template=template,
                          dedup=f"push:{reg.user_id}:{reg.sbd}:{reg.year}")

    def template(self, year: int, doc: dict) -> dict:
        lines = replies.found(doc).split("\n")[1:]
        rows = [("Tỉnh/thành", doc["province"]["name"]), ("Năm thi", str(year))]
        return transaction_payload(f"Điểm thi tốt nghiệp THPT {year}", doc["sbd"], rows,
                                   lines, self.settings.public_url)

    async def _notice(self, reg: Registration, new_id: str) -> NewMessage | None:
        """The change notice for one registration, or None when its scores did not
        change (or the old snapshot is gone)."""
        if reg.snapshot is None:
            return None
        try:
            old_info = await asyncio.to_thread(_snapshot, self.settings.data_dir, reg.snapshot)
        except store.StoreError:
            return None
        old = await asyncio.to_thread(diff.candidate, old_info, reg.sbd)
        new = await self.conversation.candidate(reg.year, reg.sbd)
        changes = diff.changed_scores(old, new)
        if not changes:
            return None
        text = replies.changed(reg.sbd, reg.year, changes)
        template = None
        if new is not None:
            template = orjson.dumps(self.template(reg.year, new)).decode()
        return NewMessage(reg.user_id, "change", split_text(text)[0], template=template,
                          dedup=f"change:{reg.user_id}:{reg.sbd}:{reg.year}:{new_id}")


@lru_cache(maxsize=16)
def _snapshot(data_dir: object, snapshot_id: str) -> store.SnapshotInfo:
    return store.get_snapshot(data_dir, snapshot_id)  # type: ignore[arg-type]
