"""A Hub token login: huggingface_hub's own `login()` checks the token and stores it where
huggingface_hub keeps tokens, so the Hub client's next call reads it by itself. Any thread but
the GUI's (it makes a network call)."""

from __future__ import annotations

from huggingface_hub import login as hf_login
from huggingface_hub.errors import HfHubHTTPError

from desktop.core.hub.http import KIND_FORBIDDEN, HubError, explain


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
            raise HubError(
                KIND_FORBIDDEN,
                "The Hub did not accept this token. Create a token with read access at "
                "huggingface.co/settings/tokens, copy it whole and try again.",
                status,
            ) from None  # the cause's request carried the token in its headers
        raise explain(exc, what="the token check", endpoint=endpoint) from None
    except ValueError as exc:  # an organisation token, or a malformed one
        raise HubError(KIND_FORBIDDEN, str(exc)) from None
    except Exception as exc:  # network and the like: explain() words them
        raise explain(exc, what="the token check", endpoint=endpoint) from None
