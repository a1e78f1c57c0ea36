"""The Hugging Face account, through huggingface_hub's own token storage: a token login
(`login()` checks the token and stores it where huggingface_hub keeps tokens, so the Hub client's
next call reads it by itself), who is logged in (`account()`), and `logout()`. Any thread but the
GUI's (login and account make network calls)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from huggingface_hub import get_token
from huggingface_hub import login as hf_login
from huggingface_hub import logout as hf_logout
from huggingface_hub import whoami as hf_whoami
from huggingface_hub.errors import HfHubHTTPError

from desktop.core.hub.http import KIND_FORBIDDEN, HubError, explain

__all__ = ["ENV_TOKENS", "Account", "account", "login", "logout"]

ENV_TOKENS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")  # huggingface_hub reads these first
_REFUSED = (
    "The Hub did not accept this token. Create a token with read access at "
    "huggingface.co/settings/tokens, copy it whole and try again."
)


@dataclass(frozen=True)
class Account:
    """Who the Hub calls run as. `name` is "" when nobody is logged in; `from_environment`:
    the token comes from HF_TOKEN (logging out here cannot remove it); `problem`: a stored
    token the Hub no longer accepts, in words."""

    name: str = ""
    from_environment: bool = False
    problem: str = ""

    @property
    def logged_in(self) -> bool:
        return bool(self.name)


def _from_environment() -> bool:
    return any(os.environ.get(name, "").strip() for name in ENV_TOKENS)


def login(token: str, endpoint: str) -> None:
    """Validate `token` with the Hub (whoami) and store it where huggingface_hub keeps tokens.

    Blocking: call it off the GUI thread. Raises HubError with a sentence for people; the token
    is never part of a message or an exception's cause.
    """

    try:
        hf_login(token=token, add_to_git_credential=False)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            # from None: the cause's request carried the token in its headers
            raise HubError(KIND_FORBIDDEN, _REFUSED, status) from None
        raise explain(exc, what="the token check", endpoint=endpoint) from None
    except ValueError as exc:  # an organisation token, or a malformed one
        raise HubError(KIND_FORBIDDEN, str(exc)) from None
    except Exception as exc:  # network and the like: explain() words them
        raise explain(exc, what="the token check", endpoint=endpoint) from None


def account(endpoint: str) -> Account:
    """Who is logged in: the user name of the token huggingface_hub would send.

    No token: `Account()` at once, without a network call. A token the Hub refuses: an Account
    with no name and the `problem` in words. Other failures (offline) raise HubError.
    """
    token = get_token()
    if token is None:
        return Account()
    env = _from_environment()
    try:
        info = hf_whoami(token=token)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            where = (
                "the HF_TOKEN environment variable" if env else "the token stored on this computer"
            )
            return Account(
                problem=f"The Hub no longer accepts {where}: log in again with a new token.",
                from_environment=env,
            )
        raise explain(exc, what="the account check", endpoint=endpoint) from None
    except Exception as exc:
        raise explain(exc, what="the account check", endpoint=endpoint) from None
    name = str(info.get("name") or info.get("fullname") or "a Hugging Face account")
    return Account(name=name, from_environment=env)


def logout() -> None:
    """Forget the stored token (all of huggingface_hub's stored tokens, as `hf auth logout`).

    Raises HubError when a token still comes from the environment (HF_TOKEN), which only the
    person who set it can remove."""
    try:
        hf_logout()
    except OSError as exc:
        raise HubError(
            KIND_FORBIDDEN,
            "The stored token is deleted, but the HF_TOKEN "
            "environment variable still logs you in: unset it and restart Openlid."
            if _from_environment()
            else str(exc),
        ) from None
