"""The error for a create that meets an object of the same identity which the program cannot take over."""

from __future__ import annotations

from .client import PrefectApiError


def exists_outside_the_stack(description: str, ui_url: str, path: str) -> PrefectApiError:
    """Names the object's page in the UI and what a user can do there (the program sets no `adopt_existing`)."""
    return PrefectApiError(
        f"{description} already exists and is not this stack's: {ui_url}. Delete it there (or rename it there, "
        "if something else uses it), then run `pulumi up` again.",
        method="POST",
        path=path,
        status_code=409,
    )
