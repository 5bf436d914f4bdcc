"""From what a student typed to the reply texts: the one place that decides what to say.

:meth:`Conversation.compose` takes the text and the user and returns the texts to send,
one chat bubble each. Under embargo an SBD is registered for the release push through
the ``register`` callback the caller passes (the sender writes the registrations in the
same transaction as the replies). :meth:`Conversation.push_text` is what a registered
student receives at the release.
"""

from __future__ import annotations

import time
from typing import Callable

import orjson

from ..lookup import Lookup
from ..settings import Settings
from . import release, replies
from .channels import result_url
from .extract import find_sbds

Register = Callable[[str, int], None]  # (sbd, year)


class Conversation:
    def __init__(self, settings: Settings, lookup: Lookup):
        self.settings = settings
        self.lookup = lookup

    async def compose(self, text: str, user_id: str = "",
                      register: Register | None = None) -> list[str]:
        """The replies to one message, one chat bubble each."""
        found = find_sbds(text)
        if release.embargoed(self.settings, time.time()):
            moment = release.release_at(self.settings)
            year = release.embargo_year(self.settings)
            if found.sbds and register is not None and year is not None and moment:
                for sbd in found.sbds:
                    register(sbd, year)
                return [replies.registered(found.sbds, moment)]
            return [replies.not_published(moment)]  # type: ignore[arg-type]
        if not found.sbds:
            return [replies.wrong_length(found.wrong_length[0]) if found.wrong_length
                    else replies.HELP]
        year = self.lookup.latest_year
        if year is None:
            return [replies.BUSY]
        out = []
        for sbd in found.sbds:
            doc = await self.candidate(year, sbd)
            out.append(self.scores_text(doc) if doc else replies.not_found(sbd, year))
        out += [replies.wrong_length(d) for d in found.wrong_length[:1]]
        if found.more:
            out.append(replies.TOO_MANY)
        return out

    async def candidate(self, year: int, sbd: str) -> dict | None:
        served = self.lookup.served.get(year)
        body = await served.get(sbd) if served is not None else None
        return orjson.loads(body) if body else None

    def scores_text(self, doc: dict) -> str:
        text = replies.found(doc)
        if self.settings.public_url:
            text += "\n" + replies.link(result_url(self.settings.public_url, doc["sbd"]))
        return text

    async def push_text(self, year: int, sbd: str) -> tuple[str, dict | None]:
        """The release push for one registration: the text and the candidate (None
        when the SBD is not in the published scores)."""
        doc = await self.candidate(year, sbd)
        if doc is None:
            return replies.not_found(sbd, year), None
        return f"{replies.PUSH_INTRO}\n{self.scores_text(doc)}", doc
