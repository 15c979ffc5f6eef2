"""Schemathesis hooks for the admin API run (loaded through SCHEMATHESIS_HOOKS by run.sh).

The admin token comes from the command line (`-H "Authorization: Bearer …"`). Generated user
ids name no session, so on their own `POST /admin/bans` and
`POST /admin/users/{userId}/disconnect` would only ever meet 404: every other case of theirs
whose `userId` has the right shape gets a live guest instead, from a pool made on the main
port before the run (`POST /admin/drain`, fuzzed too, stops new sessions for good).
"""

import json
import os
import re
import urllib.request

import schemathesis

SERVER_URL = os.environ["CHAT_SERVER_URL"]
POOL_SIZE = int(os.environ.get("SCHEMATHESIS_ADMIN_USERS", "600"))
USER_ID = re.compile(r"guest_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _guest():
    request = urllib.request.Request(f"{SERVER_URL}/api/guest", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["user"]["id"]


LIVE_USERS = [_guest() for _ in range(POOL_SIZE)]
_calls = {"count": 0}


def _live_user(current):
    """A live user instead of `current` (a well-formed id) every other call, while any last."""
    _calls["count"] += 1
    if not isinstance(current, str) or not USER_ID.fullmatch(current):
        return current
    if _calls["count"] % 2 or not LIVE_USERS:
        return current
    return LIVE_USERS.pop()


@schemathesis.hook
def before_call(context, case, **kwargs):
    operation = (case.method.upper(), case.path)
    if operation == ("POST", "/admin/bans") and isinstance(case.body, dict) and "userId" in case.body:
        case.body = {**case.body, "userId": _live_user(case.body["userId"])}
    elif operation == ("POST", "/admin/users/{userId}/disconnect") and case.path_parameters:
        user = case.path_parameters.get("userId")
        case.path_parameters = {**case.path_parameters, "userId": _live_user(user)}
