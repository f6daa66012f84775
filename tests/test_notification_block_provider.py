"""NotificationBlockProvider through the gRPC host the Pulumi engine starts, against a REAL Prefect server.

The webhook URL is a secret: these tests follow it through what the engine really does with a provider that
answers acceptSecrets=False (tests/support/engine_secrets.py): it must come back only under the output key
`url`, which the engine then marks secret, never in another output, an error message or the host's output. The
server's view is read directly; with `include_secrets=true` where the test needs the stored URL itself, and
through the server's own block loader (what an automation runs before it sends), without sending anything: no
test here calls a webhook or Slack.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import jsonschema
import pytest

from infra.prefect import NotificationBlock, NotificationBlockProvider
from infra.prefect.client import PrefectApiError, server_detail
from infra.prefect.notification_block import MASKED, _scrubbed
from tests.support.engine_secrets import (
    annotate_secrets,
    is_secret,
    make_secret,
    mark_additional_secret_outputs,
    plain_paths_holding,
)
from tests.support.fault_proxy import FaultProxy
from tests.support.provider_host import (
    BoundResource,
    ProviderCallError,
    ProviderHost,
    host_env,
    provider_property,
)

WEBHOOK_URL = f"http://127.0.0.1:9/alerts-hook/{secrets.token_hex(12)}"  # port 9: never called here
OTHER_URL = f"http://127.0.0.1:9/alerts-hook/{secrets.token_hex(12)}"
SLACK_URL = f"https://hooks.slack.com/services/T{secrets.token_hex(4)}/B{secrets.token_hex(4)}/{secrets.token_hex(12)}"
ALL_URLS = (WEBHOOK_URL, OTHER_URL, SLACK_URL)
WEBHOOK_FIELDS = {
    "name": "alerts",
    "method": "POST",
    "form_data": "{{body}}",
    "headers": {"Content-Type": "application/json"},
    "allow_private_urls": True,
}


@pytest.fixture(scope="module")
def host_config(proxy: FaultProxy) -> dict[str, str]:
    """The whole stack config as the engine sends it, the alert URL among it (a secret)."""
    return {"prefect:apiUrl": proxy.api_url, "alerts:webhookUrl": WEBHOOK_URL}


@pytest.fixture(scope="module")
def host(host_config: dict[str, str]) -> Iterator[ProviderHost]:
    with ProviderHost(env=host_env()) as provider_host:
        provider_host.configure(host_config, ["alerts:webhookUrl"])
        yield provider_host
        log = provider_host.log_text()
    assert [url for url in ALL_URLS if url in log] == [], "the provider host printed a webhook URL"


@pytest.fixture(scope="module")
def blocks(host: ProviderHost) -> BoundResource:
    return host.resource(NotificationBlockProvider(), "prefect:NotificationBlock")


def unique(prefix: str = "alerts") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def webhook_inputs(**override: Any) -> dict[str, Any]:
    return {
        "name": unique(),
        "block_type": "custom-webhook",
        "url": WEBHOOK_URL,
        "fields": WEBHOOK_FIELDS,
        **override,
    }


def stored(api: httpx.Client, block_id: str, *, include_secrets: bool = False) -> dict[str, Any]:
    response = api.get(f"/block_documents/{block_id}", params={"include_secrets": include_secrets})
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def loaded_by_the_server(document: dict[str, Any]) -> Any:
    """The block object an automation's SendNotification would notify through, built by the server's own
    loader (prefect/server/events/actions.py `_load_block_from_block_document`) from the document as the
    server hands it to that action (with secrets)."""
    from prefect.server.events.actions import _load_block_from_block_document
    from prefect.server.schemas.core import BlockDocument

    # A loop of its own, never made current: asyncio.run would leave none behind for the Pulumi mocks of later
    # tests in this process.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(
            _load_block_from_block_document(BlockDocument.model_validate(document))
        )
    finally:
        loop.close()


class Created:
    def __init__(self, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        self.id, self.inputs, self.outputs = id_, inputs, outputs


@pytest.fixture
def created(blocks: BoundResource) -> Iterator[Created]:
    inputs = blocks.checked(webhook_inputs())
    id_, outputs = blocks.create(inputs)
    yield Created(id_, inputs, outputs)
    blocks.delete(id_, outputs)


# --- the engine's rules for secrets, on this provider ------------------------------------------------------


def test_provider_is_pickled_by_reference_and_its_resource_asks_for_a_secret_url() -> None:
    provider = NotificationBlockProvider()
    assert vars(provider) == {}
    pickled = base64.b64decode(provider_property(provider))
    assert b"infra.prefect.notification_block" in pickled and len(pickled) < 500
    assert NotificationBlock._resource_type_name == "dynamic/prefect:NotificationBlock"


def test_the_host_does_not_accept_secrets_so_the_engine_strips_them() -> None:
    with ProviderHost(env=host_env()) as host:
        accepts = host.configure(
            {"prefect:apiUrl": "http://127.0.0.1:9/api", "alerts:webhookUrl": WEBHOOK_URL}
        )
    assert accepts is False


def test_the_url_comes_back_only_under_its_own_key_so_the_engine_keeps_it_secret(
    blocks: BoundResource, created: Created
) -> None:
    # What the program registers: `url` a secret. The engine sends it stripped (as `created` did) and copies the
    # secret bit back by key, to the checked inputs and to the outputs.
    declared = {**webhook_inputs(name=created.inputs["name"]), "url": make_secret(WEBHOOK_URL)}
    checked = annotate_secrets(dict(created.inputs), declared)
    outputs = annotate_secrets(dict(created.outputs), checked)
    assert is_secret(checked["url"]) and is_secret(outputs["url"])
    assert plain_paths_holding(checked, WEBHOOK_URL) == []
    assert plain_paths_holding(outputs, WEBHOOK_URL) == []  # no derived copy under another key
    # ...and the resource lists `url` as a secret output, which covers a URL given as a plain string.
    plain_outputs = mark_additional_secret_outputs(dict(created.outputs), ["url"])
    assert plain_paths_holding(plain_outputs, WEBHOOK_URL) == []


def test_create_keeps_the_url_a_secret_on_the_server(created: Created, api: httpx.Client) -> None:
    document = stored(api, created.id)
    assert document["name"] == created.inputs["name"]
    assert document["block_type"]["slug"] == "custom-webhook"
    # The custom webhook's URL field is plain text: it holds a template, the URL is in its secret dict.
    assert document["data"]["url"] == "{{webhook_url}}"
    assert document["data"]["secrets"] == {"webhook_url": MASKED}
    assert WEBHOOK_URL not in httpx.Response(200, json=document).text
    assert stored(api, created.id, include_secrets=True)["data"]["secrets"] == {"webhook_url": WEBHOOK_URL}
    assert created.outputs["url"] == WEBHOOK_URL
    assert created.outputs["fields"] == WEBHOOK_FIELDS
    assert created.outputs["ui_url"].endswith(f"/blocks/block/{created.id}")


def test_the_server_would_post_the_alert_body_as_json_to_the_url(created: Created, api: httpx.Client) -> None:
    block = loaded_by_the_server(stored(api, created.id, include_secrets=True))
    assert "notify" in block.get_block_capabilities()
    request = block._build_request_args(body='{"state": "Failed"}', subject="ignored")
    assert (request["method"], request["url"]) == ("POST", WEBHOOK_URL)
    assert request["content"] == '{"state": "Failed"}'  # form_data "{{body}}": the body, sent as it is
    assert request["headers"] == {"Content-Type": "application/json"}


def test_slack_block_fits_prefects_own_schema_and_loads_as_a_slack_webhook(
    blocks: BoundResource, api: httpx.Client
) -> None:
    inputs = blocks.checked({"name": unique("slack"), "block_type": "slack-webhook", "url": SLACK_URL})
    id_, outputs = blocks.create(inputs)
    try:
        document = stored(api, id_, include_secrets=True)
        schema = api.get(f"/block_schemas/{document['block_schema_id']}").raise_for_status().json()
        assert schema["block_type"]["slug"] == "slack-webhook"
        jsonschema.validate(document["data"], schema["fields"])  # the server's own schema for the type
        assert schema["fields"]["secret_fields"] == ["url"]
        assert stored(api, id_)["data"]["url"] == MASKED
        # What the server builds before it notifies: one Slack target in Apprise. Nothing is sent.
        block = loaded_by_the_server(document)
        assert type(block).__name__ == "SlackWebhook"
        assert [server.service_name for server in block._apprise_client] == ["Slack"]
        assert outputs["url"] == SLACK_URL and outputs["fields"] == {}
    finally:
        blocks.delete(id_, outputs)


# --- check ------------------------------------------------------------------------------------------------


def test_check_fills_defaults_and_asks_nothing_of_the_server(
    blocks: BoundResource, proxy: FaultProxy
) -> None:
    proxy.clear_requests()
    result = blocks.check({"name": "alerts", "block_type": "slack-webhook", "url": SLACK_URL})
    assert result.failures == []
    assert (result["fields"], result["adopt_existing"]) == ({}, False)
    assert proxy.requests == []


@pytest.mark.parametrize(
    ("override", "prop", "fragment"),
    [
        ({"name": "Alerts Webhook"}, "name", "lowercase letters, digits and dashes; e.g. 'alerts-webhook'"),
        ({"block_type": "email"}, "block_type", "use one of custom-webhook, slack-webhook"),
        ({"url": ""}, "url", "url is empty"),
        ({"url": WEBHOOK_URL.replace("http://", "ftp://")}, "url", "is not an http(s) URL"),
        ({"url": WEBHOOK_URL + "\n"}, "url", "line breaks"),
        ({"url": "http://127.0.0.1:99999" + WEBHOOK_URL[17:]}, "url", "is not an http(s) URL"),
        ({"fields": {"url": OTHER_URL}}, "fields", "must not set url"),
        ({"fields": {"secrets": {"token": "x"}}}, "fields", "must not set secrets"),
        ({"fields": ["method", "POST"]}, "fields", "must be an object"),
    ],
)
def test_check_rejects_each_invalid_input_without_repeating_the_url(
    blocks: BoundResource, override: dict[str, Any], prop: str, fragment: str
) -> None:
    result = blocks.check(webhook_inputs(**override))
    assert result.properties == {prop}
    (reason,) = result.reasons(prop)
    assert fragment in reason
    assert [url for url in (*ALL_URLS, "127.0.0.1:99999") if url in reason] == []


# --- read: masked is not drift, the rest is ---------------------------------------------------------------


def test_a_masked_url_is_not_drift_and_a_refresh_writes_nothing(
    blocks: BoundResource, created: Created, proxy: FaultProxy
) -> None:
    proxy.clear_requests()
    read = blocks.read(created.id, created.outputs)
    assert read.outputs == created.outputs
    assert read.inputs is not None and read.inputs["url"] == WEBHOOK_URL
    assert blocks.diff(created.id, read.outputs, created.inputs).changes is False
    assert proxy.writes() == []


def test_out_of_band_edits_show_as_drift_and_update_restores(
    blocks: BoundResource, created: Created, api: httpx.Client
) -> None:
    data = stored(api, created.id, include_secrets=True)["data"]
    # Made in the UI: another method, and the URL template replaced by some other address.
    edited = {**data, "method": "PUT", "url": "http://127.0.0.1:9/elsewhere"}
    api.patch(
        f"/block_documents/{created.id}", json={"data": edited, "merge_existing_data": False}
    ).raise_for_status()

    read = blocks.read(created.id, created.outputs)
    assert read.outputs["fields"]["method"] == "PUT"
    assert read.outputs.get("url") is None  # the block no longer sends to the URL we know
    assert blocks.diff(created.id, read.outputs, created.inputs).changes is True
    outputs = blocks.update(created.id, read.outputs, created.inputs)
    assert outputs == created.outputs
    restored = stored(api, created.id, include_secrets=True)["data"]
    assert restored == {**WEBHOOK_FIELDS, "url": "{{webhook_url}}", "secrets": {"webhook_url": WEBHOOK_URL}}


def test_a_secret_edited_in_the_ui_is_invisible_to_refresh_and_a_change_and_restore_puts_it_back(
    blocks: BoundResource, created: Created, api: httpx.Client
) -> None:
    """The UI edit of the URL itself: the server shows it masked, so a refresh cannot see it (docs/reliability.md
    says so). Changing the URL in the stack and back, each with an update, writes the declared one again."""
    data = stored(api, created.id, include_secrets=True)["data"]
    edited = {**data, "secrets": {"webhook_url": OTHER_URL}}
    api.patch(
        f"/block_documents/{created.id}", json={"data": edited, "merge_existing_data": False}
    ).raise_for_status()

    read = blocks.read(created.id, created.outputs)
    assert read.outputs == created.outputs  # the masked secret reads as the URL last written
    assert blocks.diff(created.id, read.outputs, created.inputs).changes is False
    assert stored(api, created.id, include_secrets=True)["data"]["secrets"] == {"webhook_url": OTHER_URL}

    elsewhere = {**created.inputs, "url": "https://alerts.invalid/placeholder"}
    outputs = blocks.update(created.id, read.outputs, elsewhere)
    outputs = blocks.update(created.id, outputs, created.inputs)
    assert outputs == created.outputs
    assert stored(api, created.id, include_secrets=True)["data"]["secrets"] == {"webhook_url": WEBHOOK_URL}


def test_out_of_band_delete_reads_as_gone(blocks: BoundResource, created: Created, api: httpx.Client) -> None:
    api.delete(f"/block_documents/{created.id}").raise_for_status()
    assert blocks.read(created.id, created.outputs).gone
    with pytest.raises(ProviderCallError) as error:
        blocks.update(created.id, created.outputs, {**created.inputs, "url": OTHER_URL})
    assert "no longer exists (deleted outside Pulumi)" in error.value.message
    assert OTHER_URL not in error.value.details


# --- diff and update --------------------------------------------------------------------------------------


def test_a_changed_url_is_an_update_in_place_that_writes_it(
    blocks: BoundResource, created: Created, proxy: FaultProxy, api: httpx.Client
) -> None:
    news = {**created.inputs, "url": OTHER_URL}
    diff = blocks.diff(created.id, created.outputs, news)
    assert (diff.changes, diff.replaces) == (True, [])
    proxy.clear_requests()
    outputs = blocks.update(created.id, created.outputs, news)
    (patch,) = proxy.applied_writes()  # a PATCH the busy SQLite server refused (503) was sent again
    assert (patch.method, patch.path) == ("PATCH", f"/api/block_documents/{created.id}")
    assert patch.body["merge_existing_data"] is False
    assert stored(api, created.id, include_secrets=True)["data"]["secrets"] == {"webhook_url": OTHER_URL}
    assert outputs["url"] == OTHER_URL and outputs["block_document_id"] == created.id
    assert blocks.diff(created.id, outputs, news).changes is False


@pytest.mark.parametrize(("key", "value"), [("name", "renamed"), ("block_type", "slack-webhook")])
def test_name_or_type_replaces_creating_the_new_one_first(
    blocks: BoundResource, created: Created, key: str, value: str
) -> None:
    diff = blocks.diff(created.id, created.outputs, {**created.inputs, key: value})
    assert (diff.replaces, diff.delete_before_replace) == ([key], False)


def test_changed_fields_are_an_update(blocks: BoundResource, created: Created, api: httpx.Client) -> None:
    news = {**created.inputs, "fields": {**WEBHOOK_FIELDS, "timeout": 5}}
    assert blocks.diff(created.id, created.outputs, news).replaces == []
    outputs = blocks.update(created.id, created.outputs, news)
    assert stored(api, created.id)["data"]["timeout"] == 5
    assert outputs["fields"]["timeout"] == 5
    assert stored(api, created.id, include_secrets=True)["data"]["secrets"] == {"webhook_url": WEBHOOK_URL}


# --- create over an existing block, adoption, the schema, errors -------------------------------------------


def test_create_over_an_existing_block_fails_and_links_to_it(blocks: BoundResource, created: Created) -> None:
    with pytest.raises(ProviderCallError) as error:
        blocks.create(created.inputs)
    message = error.value.message
    assert "already exists" in message and created.outputs["ui_url"] in message
    assert "Delete it there" in message
    assert "adopt_existing" not in message  # the program has no way to set it
    assert WEBHOOK_URL not in error.value.details


def test_adopt_existing_writes_our_url_over_the_one_it_cannot_read(
    blocks: BoundResource, created: Created, api: httpx.Client
) -> None:
    adopted_id, outputs = blocks.create({**created.inputs, "url": OTHER_URL, "adopt_existing": True})
    assert adopted_id == created.id
    assert stored(api, created.id, include_secrets=True)["data"]["secrets"] == {"webhook_url": OTHER_URL}
    assert outputs["url"] == OTHER_URL and outputs["adopt_existing"] is True


def test_fields_that_do_not_fit_the_servers_schema_fail_before_anything_is_written(
    blocks: BoundResource, proxy: FaultProxy
) -> None:
    proxy.clear_requests()
    inputs = blocks.checked(webhook_inputs(fields={**WEBHOOK_FIELDS, "method": "FETCH"}))
    with pytest.raises(ProviderCallError) as error:
        blocks.create(inputs)
    message = error.value.message
    assert "`fields` do not fit the 'custom-webhook' block schema" in message
    assert "'FETCH' is not one of" in message and "Fix `fields`" in message
    assert WEBHOOK_URL not in error.value.details
    assert proxy.writes() == []


def test_a_server_error_that_echoes_the_request_does_not_carry_the_url(blocks: BoundResource) -> None:
    # Past check (as a server with stricter rules than ours would): the server answers 422 and echoes the
    # whole request body, the URL inside it.
    with pytest.raises(ProviderCallError) as error:
        blocks.create(webhook_inputs(name="Not A Valid Name"))
    assert "422" in error.value.message and "field `name`" in error.value.message
    assert WEBHOOK_URL not in error.value.details


@pytest.mark.parametrize(
    "body",
    [
        # FastAPI's own validation error shape (a server or gateway without Prefect's handler).
        {
            "detail": [
                {"type": "string_type", "loc": ["body", "data"], "msg": "bad", "input": {"url": WEBHOOK_URL}}
            ]
        },
        # A JSON error body of no known shape that echoes the request.
        {"error": "rejected", "request_body": {"data": {"url": WEBHOOK_URL}}},
    ],
)
def test_error_details_never_quote_what_the_request_sent(body: dict[str, Any]) -> None:
    detail = server_detail(httpx.Response(422, json=body))
    assert WEBHOOK_URL not in detail
    assert detail  # still says something


def test_an_error_raised_while_the_url_is_sent_is_scrubbed_of_it() -> None:
    """Whatever a server or gateway answers (a text page, a body of unknown shape), the provider's requests that
    carry the URL re-raise their errors without it, as is and URL-quoted."""
    echoed = f"Prefect API PATCH /x failed: 400: rejected {WEBHOOK_URL} ({quote(WEBHOOK_URL, safe='')})."
    with pytest.raises(PrefectApiError) as error, _scrubbed(WEBHOOK_URL):
        raise PrefectApiError(echoed, method="PATCH", path="/x", status_code=400, detail=WEBHOOK_URL)
    assert str(error.value) == "Prefect API PATCH /x failed: 400: rejected [secret] ([secret])."
    assert (error.value.detail, error.value.status_code, error.value.method) == ("[secret]", 400, "PATCH")


@pytest.mark.parametrize(
    "echo",
    [
        WEBHOOK_URL.replace("/", "\\/"),  # the URL inside a JSON string that escapes slashes
        WEBHOOK_URL[: len(WEBHOOK_URL) - 8] + "...",  # cut short by a server that truncates what it echoes
        urlsplit(WEBHOOK_URL).path,  # the path alone (a gateway's access log line)
        quote(urlsplit(WEBHOOK_URL).path, safe=""),
    ],
    ids=["json-escaped", "truncated", "path-only", "quoted-path"],
)
def test_an_escaped_or_truncated_echo_keeps_no_part_of_the_token(echo: str) -> None:
    token = WEBHOOK_URL.rsplit("/", 1)[1]
    with pytest.raises(PrefectApiError) as error, _scrubbed(WEBHOOK_URL):
        raise PrefectApiError(
            f"Prefect API PATCH /x failed: 400: rejected {echo}", method="PATCH", path="/x", status_code=400
        )
    kept = [token[i : i + 6] for i in range(len(token) - 5) if token[i : i + 6] in str(error.value)]
    assert kept == [], str(error.value)
    assert str(error.value).startswith("Prefect API PATCH /x failed: 400: rejected ")


def test_delete_twice_succeeds(blocks: BoundResource, api: httpx.Client) -> None:
    id_, outputs = blocks.create(blocks.checked(webhook_inputs()))
    blocks.delete(id_, outputs)
    blocks.delete(id_, outputs)
    assert api.get(f"/block_documents/{id_}").status_code == 404
