"""From what a student typed to the reply texts: the one place that decides what to say.

:meth:`Conversation.compose` takes the text and the user and returns the texts to send,
one chat bubble each: :mod:`.understand` reads the text, :mod:`.replies` words the answer
(the Sở's own answers come from :mod:`.answers`). Under embargo an SBD is registered for the release push through
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
from . import answers, release, replies, understand
from .channels import result_url

Register = Callable[[str, int], None]  # (sbd, year)


class Conversation:
    def __init__(self, settings: Settings, lookup: Lookup):
        self.settings = settings
        self.lookup = lookup
        self.answers = answers.load(settings.chatbot_answers)
        self.recent = replies.Recent()  # users sent the "type your SBD" nudge lately

    async def compose(self, text: str, user_id: str = "", register: Register | None = None,
                      event: str = "user_send_text") -> list[str]:
        """The replies to one event, one chat bubble each."""
        if event != "user_send_text":
            return replies.for_event(event, user_id, self.recent, self.settings)
        served, current = self.lookup.served, self.lookup.current_year
        reading = understand.read(text, served=replies.served_provinces(served, current),
                                  max_sbds=self.settings.chatbot_max_sbds)
        embargo = release.embargo_year(self.lookup)
        # under this year's embargo, unless the message names only other years (last
        # year's scores are published: they are answered as on any day)
        if embargo is not None and (not reading.years or embargo in reading.years):
            moment = release.release_at(self.lookup, embargo)
            if reading.sbds and register is not None and moment:
                for sbd in reading.sbds:
                    register(sbd, embargo)
                return [replies.registered(reading.sbds, moment)]
            if reading.sbds or not (reading.intents or reading.ack or reading.near_misses):
                return [replies.not_published(moment)]  # type: ignore[arg-type]
            # a question, a thank-you or a near miss is answered as on any day
        year = replies.choose_year(reading.years, served, current)
        if year is not None and reading.sbds \
                and release.embargoed(self.lookup, time.time(), year):
            # a year the message names that is not published yet, other than the current
            # year (whose embargo, with its registration for the push, is answered above)
            moment = release.release_at(self.lookup, year)
            return [replies.not_published(moment)]  # type: ignore[arg-type]
        docs = {sbd: await self.candidate(year, sbd) for sbd in reading.sbds} \
            if year is not None else {}
        return replies.for_reading(reading, docs, year, served, self.answers, self.settings,
                                   link=self.link, current=current)

    async def candidate(self, year: int, sbd: str) -> dict | None:
        served = self.lookup.served.get(year)
        body = await served.get(sbd) if served is not None else None
        return orjson.loads(body) if body else None

    def scores_text(self, doc: dict) -> str:
        text = replies.scores(doc)
        return f"{text}\n{self.link(doc['sbd'])}" if self.settings.public_url else text

    def link(self, sbd: str) -> str:
        """The line linking the result page ("" when there is no public URL)."""
        if not self.settings.public_url:
            return ""
        return replies.link(result_url(self.settings.public_url, sbd))

    async def push_text(self, year: int, sbd: str) -> tuple[str, dict | None]:
        """The release push for one registration: the text and the candidate (None
        when the SBD is not in the published scores)."""
        doc = await self.candidate(year, sbd)
        if doc is None:
            return replies.not_found(sbd, year), None
        return f"{replies.PUSH_INTRO}\n{self.scores_text(doc)}", doc
