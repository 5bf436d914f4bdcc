"""The Zalo OA chatbot: signed webhook in, the candidate's scores sent back.

``signature`` verifies Zalo's events, ``extract`` finds SBDs in what people type,
``replies`` writes the Vietnamese answers, ``zalo`` talks to Zalo's OA API (tokens,
bounded outbound queue), ``webhook`` is the route that ties them together.
"""
