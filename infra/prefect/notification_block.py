"""The `NotificationBlock` dynamic resource: a Prefect notification block document (where alerts are sent).

Two block types, both registered by every Prefect server itself: `custom-webhook` (a JSON POST to any URL) and
`slack-webhook`. The webhook URL is a Pulumi secret end to end:

* it enters as a secret input (`url`), and leaves only as the `url` output: under the real engine the
  dynamic-provider host answers Configure with acceptSecrets=False (pulumi/dynamic/__main__.py `Configure`), so
  the engine strips secretness on the way in and copies it back to the outputs whose KEY matches a secret input
  (pkg/resource/plugin/provider_plugin.go `annotateSecrets`, called by Check, Create, Update and Read). The
  resource also lists `url` in `additional_secret_outputs` (pkg/resource/deploy/step_executor.go), so the output
  is secret even when a program passes a plain string;
* Prefect stores it as a block secret, which its API only ever shows masked (`********`): Slack's `url` is a
  `SecretStr`, and the custom webhook, whose `url` field is plain text, gets the template `{{webhook_url}}` there
  and the URL in its `secrets` dict, which the block substitutes when it sends (prefect/blocks/notifications.py
  `CustomWebhookNotificationBlock._build_request_args`);
* no output other than `url` holds it, and no error message repeats it (`_scrubbed`).

A masked value read back is not drift: the URL of the previous state stands for it. A changed `url` input is an
update in place (the previous secret output arrives decrypted in `olds`, which `diff` compares). The document is
checked against the block type's schema AS THE SERVER HAS IT before it is written.

Identity: (block type, name); the Pulumi id is the document's UUID. Changing either replaces the document; the
replacement cannot collide with the old one (another name or type), so it is created first.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import pulumi
from pulumi.dynamic import Resource

from .client import PrefectApiError, PrefectClient, ui_base_url
from .conflicts import exists_outside_the_stack
from .provider_base import InputCheck, PrefectResourceProvider
from .validation import validation_failure, webhook_url_problem

# prefect/utilities/names.py `obfuscate`: what the API shows instead of a secret value.
MASKED = "********"
# prefect/types/names.py `BlockDocumentName`: a name, and lowercase letters, digits and dashes only.
BLOCK_NAME_PATTERN = re.compile(r"^[a-z0-9-]+$")
# Stands for the URL when the document is checked against the schema, so that no message can quote it.
URL_STAND_IN = "https://webhook.invalid/stand-in"
INPUT_KEYS = ("name", "block_type", "url", "fields", "adopt_existing")
OUTPUT_ONLY_KEYS = ("block_document_id", "block_schema_id", "ui_url")
SECRET_OUTPUTS = ["url"]


@dataclass(frozen=True)
class BlockKind:
    """What is particular to one block type: where its secret URL goes in the document's data, and the data
    the kind always sets (the custom webhook's `url` template that points at that secret)."""

    slug: str
    url_path: tuple[str, ...]
    fixed: Mapping[str, Any]

    def data(self, url: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The block document's data: the declared fields, the fixed data, and the URL where it belongs."""
        data = {**copy.deepcopy(dict(fields)), **copy.deepcopy(dict(self.fixed))}
        *parents, leaf = self.url_path
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = url
        return data

    def managed_keys(self) -> set[str]:
        return {self.url_path[0], *self.fixed}

    def split(self, data: Mapping[str, Any], previous_url: str | None) -> tuple[str | None, dict[str, Any]]:
        """(the URL, the declared fields) of a document's data as the server has it. A masked URL is the one
        last written (`previous_url`); when the fixed data was edited (the custom webhook's `url` template
        replaced), where the block sends is no longer the URL we know: None, which shows as a change."""
        value: Any = data
        for key in self.url_path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if any(data.get(key) != fixed for key, fixed in self.fixed.items()):
            value = None
        elif value == MASKED:
            value = previous_url
        fields = {k: v for k, v in data.items() if k not in self.managed_keys()}
        return value, fields


BLOCK_KINDS = {
    kind.slug: kind
    for kind in (
        # prefect/blocks/notifications.py CustomWebhookNotificationBlock: "All nested string param contains
        # `{{key}}` will be substituted with value from context/secrets"; `secrets` is its secret field.
        BlockKind("custom-webhook", ("secrets", "webhook_url"), {"url": "{{webhook_url}}"}),
        # prefect/blocks/notifications.py SlackWebhook: `url: SecretStr`.
        BlockKind("slack-webhook", ("url",), {}),
    )
}


def block_document_path(block_document_id: str) -> str:
    return f"/block_documents/{quote(block_document_id, safe='')}"


def block_document_ui_url(api_url: str, block_document_id: str) -> str:
    # prefect/utilities/urls.py UI_URL_FORMATS["block-document"]
    return f"{ui_base_url(api_url)}/blocks/block/{block_document_id}"


class NotificationBlockProvider(PrefectResourceProvider):
    resource_type = "NotificationBlock"
    input_keys = INPUT_KEYS
    replace_keys = ("block_type", "name")
    update_keys = ("url", "fields")
    defaults: ClassVar[Mapping[str, Any]] = {"fields": {}, "adopt_existing": False}
    delete_before_replace = False  # a new (type, name) never collides with the old one

    def validate(self, check: InputCheck) -> None:
        check.judge("name", _block_name_problem)
        check.judge("block_type", _block_type_problem)
        check.judge(
            "url", lambda url: webhook_url_problem(url, "url", "pass the webhook URL as a secret string.")
        )
        check.flags("adopt_existing")
        kind = BLOCK_KINDS.get(check.inputs.get("block_type"))  # type: ignore[arg-type]
        check.judge("fields", lambda fields: _fields_problem(fields, kind))

    def describe(self, props: Mapping[str, Any]) -> str:
        return f"Notification block {props.get('block_type')}/{props.get('name')}"

    def object_path(self, id_: str, props: Mapping[str, Any]) -> str | None:
        return block_document_path(id_)

    def resolve(self, client: PrefectClient, desired: dict[str, Any]) -> None:
        desired.update(self._schema(client, desired))

    def find(self, client: PrefectClient, desired: Mapping[str, Any]) -> dict[str, Any] | None:
        slug, name = quote(desired["block_type"], safe=""), quote(desired["name"], safe="")
        found: dict[str, Any] | None = client.get_or_none(
            f"/block_types/slug/{slug}/block_documents/name/{name}"
        )
        return found

    def adoption_state(
        self, client: PrefectClient, existing: Mapping[str, Any], desired: Mapping[str, Any]
    ) -> dict[str, Any]:
        # The adopted document's URL cannot be read (it is masked): always send ours.
        return {**self.outputs(client, existing, desired), "url": None}

    def already_exists(
        self, client: PrefectClient, desired: Mapping[str, Any], existing: Mapping[str, Any] | None = None
    ) -> PrefectApiError:
        existing = existing or self.find(client, desired)
        id_ = str(existing["id"]) if existing else ""
        where = block_document_ui_url(client.base_url, id_) if id_ else client.base_url
        path = block_document_path(id_) if id_ else "/block_documents/"
        return exists_outside_the_stack(self.describe(desired), where, path)

    def post(self, client: PrefectClient, desired: Mapping[str, Any]) -> dict[str, Any]:
        body = {
            "name": desired["name"],
            "block_type_id": desired["block_type_id"],
            "block_schema_id": desired["block_schema_id"],
            "data": _kind(desired).data(desired["url"], desired["fields"]),
        }
        with _scrubbed(desired["url"]):
            try:
                created: dict[str, Any] = client.post("/block_documents/", body, idempotent=False)
            except PrefectApiError as exc:
                if exc.status_code == 409:  # "Block already exists": POST never overwrites
                    raise self.already_exists(client, desired) from None
                raise
        return created

    def apply(
        self, client: PrefectClient, id_: str, current: Mapping[str, Any], desired: Mapping[str, Any]
    ) -> bool:
        if not self.changed_keys(current, desired):
            return False
        schema = self._schema(client, desired)
        # The whole data, not merged: prefect/server/models/block_documents.py `update_block_document`.
        body = {
            "block_schema_id": schema["block_schema_id"],
            "data": _kind(desired).data(desired["url"], desired["fields"]),
            "merge_existing_data": False,
        }
        with _scrubbed(desired["url"]):
            client.patch(block_document_path(id_), body)
        return True

    def state(
        self, client: PrefectClient, obj: Mapping[str, Any], previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        slug = (obj.get("block_type") or {}).get("slug") or previous.get("block_type")
        kind = BLOCK_KINDS.get(str(slug))
        data = obj.get("data") or {}
        # The server shows secrets only masked: a masked URL is not drift (see `BlockKind.split`).
        url, fields = kind.split(data, previous.get("url")) if kind else (None, dict(data))
        return {
            "block_document_id": str(obj["id"]),
            "name": obj.get("name"),
            "block_type": slug,
            "url": url,
            "fields": fields,
            "block_schema_id": str(obj.get("block_schema_id")),
            "ui_url": block_document_ui_url(client.base_url, str(obj["id"])),
        }

    def _schema(self, client: PrefectClient, desired: Mapping[str, Any]) -> dict[str, str]:
        """The block type's id and its schema on this server, after checking the document against that schema."""
        slug = desired["block_type"]
        block_type = client.get_or_none(f"/block_types/slug/{quote(slug, safe='')}")
        schemas = []
        if block_type is not None:
            schemas = client.post(
                "/block_schemas/filter",
                {"block_schemas": {"block_type_id": {"any_": [block_type["id"]]}}, "limit": 1},
                idempotent=True,
            )
        if not schemas:
            raise PrefectApiError(
                f"{self.describe(desired)}: the server at {client.base_url} has no block type {slug!r}; use a "
                f"block type it has ({', '.join(sorted(BLOCK_KINDS))} are registered by Prefect's server itself).",
                method="GET",
                path=f"/block_types/slug/{slug}",
                status_code=404,
            )
        schema = schemas[0]  # the newest version (the server sorts block schemas newest first)
        data = _kind(desired).data(URL_STAND_IN, desired["fields"])
        failure = validation_failure(data, schema.get("fields") or {})
        if failure:
            raise PrefectApiError(
                f"{self.describe(desired)}: `fields` do not fit the {slug!r} block schema on {client.base_url}: "
                f"{failure}. Fix `fields` (the URL itself is the `url` input).",
                method="POST",
                path="/block_schemas/filter",
                status_code=None,
            )
        return {"block_type_id": str(block_type["id"]), "block_schema_id": str(schema["id"])}  # type: ignore[index]


def _kind(props: Mapping[str, Any]) -> BlockKind:
    return BLOCK_KINDS[props["block_type"]]


def _block_name_problem(name: Any) -> str | None:
    if isinstance(name, str) and BLOCK_NAME_PATTERN.match(name):
        return None
    suggestion = re.sub(r"[^a-z0-9-]+", "-", str(name).lower()).strip("-") or "alerts"
    return (
        f"name {name!r} is not a block document name: Prefect allows only lowercase letters, digits and dashes; "
        f"e.g. {suggestion!r}."
    )


def _block_type_problem(block_type: Any) -> str | None:
    if block_type in BLOCK_KINDS:
        return None
    return f"block_type {block_type!r} is not supported; use one of {', '.join(sorted(BLOCK_KINDS))}."


def _fields_problem(fields: Any, kind: BlockKind | None) -> str | None:
    if not isinstance(fields, Mapping):
        return f"fields must be an object (the block's data besides the URL), not {type(fields).__name__}."
    clash = sorted(set(fields) & kind.managed_keys()) if kind else []
    if clash:
        return (
            f"fields must not set {', '.join(clash)}: the {kind.slug} block keeps the URL there "  # type: ignore[union-attr]
            "(give it as the secret `url` input)."
        )
    return None


# A piece of the URL's path or query this long, found anywhere in an error, is taken for part of the token.
SECRET_PIECE_LENGTH = 6
SCRUBBED = "[secret]"


def scrub(text: str, secret: str) -> str:
    """`text` with the secret URL, and every piece of its path and query (where a webhook keeps its token), gone:
    a server may echo the URL escaped (`\\/` in JSON, %-quoted), cut short, or only its path."""
    text = text.replace(secret, SCRUBBED).replace(quote(secret, safe=""), SCRUBBED)
    parts = urlsplit(secret)
    segments = {
        form
        for segment in re.split(r"[/?&=#;]", f"{parts.path}?{parts.query}#{parts.fragment}")
        for form in (segment, quote(segment, safe=""))
        if len(segment) >= SECRET_PIECE_LENGTH
    }
    pieces = {
        form[i : i + SECRET_PIECE_LENGTH]
        for form in segments
        for i in range(len(form) - SECRET_PIECE_LENGTH + 1)
    }
    hidden = [False] * len(text)
    for i in range(len(text) - SECRET_PIECE_LENGTH + 1):
        if text[i : i + SECRET_PIECE_LENGTH] in pieces:
            hidden[i : i + SECRET_PIECE_LENGTH] = [True] * SECRET_PIECE_LENGTH
    out: list[str] = []
    for i, char in enumerate(text):
        if not hidden[i]:
            out.append(char)
        elif i == 0 or not hidden[i - 1]:
            out.append(SCRUBBED)
    return "".join(out)


@contextmanager
def _scrubbed(secret: str) -> Iterator[None]:
    """Re-raise API errors with the secret URL scrubbed (`scrub`): a server may echo the request (a 422 carries
    `request_body`), and the engine prints the whole message and traceback."""
    try:
        yield
    except PrefectApiError as exc:
        text, detail = scrub(str(exc), secret), scrub(exc.detail, secret) if exc.detail else exc.detail
        if text == str(exc) and detail == exc.detail:
            raise
        raise PrefectApiError(
            text,
            method=exc.method,
            path=exc.path,
            status_code=exc.status_code,
            detail=detail,
            attempts=exc.attempts,
            maybe_applied=exc.maybe_applied,
        ) from None


class NotificationBlock(Resource, module="prefect", name="NotificationBlock"):
    """A Prefect notification block document of `block_type` (`custom-webhook` or `slack-webhook`) that sends
    to `url`, a secret. `fields` is the rest of the block's data (e.g. the custom webhook's `method`,
    `form_data`, `headers`). Set `adopt_existing=True` to take over a document that already exists (its URL is
    then overwritten: it cannot be read)."""

    block_document_id: pulumi.Output[str]
    block_schema_id: pulumi.Output[str]
    ui_url: pulumi.Output[str]
    name: pulumi.Output[str]
    block_type: pulumi.Output[str]
    url: pulumi.Output[str]
    fields: pulumi.Output[dict[str, Any]]
    adopt_existing: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        block_type: pulumi.Input[str],
        url: pulumi.Input[str],
        fields: pulumi.Input[dict[str, Any]] | None = None,
        adopt_existing: pulumi.Input[bool] = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "name": name,
            "block_type": block_type,
            "url": pulumi.Output.secret(url),
            "fields": fields,
            "adopt_existing": adopt_existing,
            **dict.fromkeys(OUTPUT_ONLY_KEYS),
        }
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS)
        super().__init__(
            NotificationBlockProvider(),
            resource_name,
            props,
            pulumi.ResourceOptions.merge(opts, secret_outputs),
        )
