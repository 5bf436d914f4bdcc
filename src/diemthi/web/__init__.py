"""The HTML pages students look at: server-rendered over the same lookup as the API."""
