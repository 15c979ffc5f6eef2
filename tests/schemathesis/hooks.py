"""Schemathesis hooks for chat-server (loaded through SCHEMATHESIS_HOOKS by run.sh).

Every test case runs as a fresh guest session with a real token from `POST /api/guest`, so a
case that deletes its session (`DELETE /api/guest/me`) cannot end the session other cases use.
"""

import json
import os
import urllib.request

import schemathesis

SERVER_URL = os.environ["CHAT_SERVER_URL"]


@schemathesis.auth(refresh_interval=None)
class FreshGuest:
    """A new guest session per test case, sent as `Authorization: Bearer <token>`."""

    def get(self, case, context):
        request = urllib.request.Request(f"{SERVER_URL}/api/guest", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["token"]

    def set(self, case, token, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {token}"
