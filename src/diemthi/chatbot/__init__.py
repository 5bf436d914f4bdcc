"""The Zalo OA chatbot: signed webhook in, the candidate's scores sent back.

``signature`` verifies Zalo's events, ``understand`` reads SBDs, near misses and questions
in what people type, ``answers`` holds the Sở's answers (a TOML file), ``replies`` writes
the Vietnamese answers, ``zalo`` talks to Zalo's OA API (tokens, bounded outbound queue),
``webhook`` is the route that ties them together.
"""
