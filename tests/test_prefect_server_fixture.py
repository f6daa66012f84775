import httpx

from tests.support.prefect_server import PrefectServer


def test_server_answers_and_survives_restart(prefect_server: PrefectServer) -> None:
    flow = (
        httpx.post(f"{prefect_server.api_url}/flows/", json={"name": "fixture-check"})
        .raise_for_status()
        .json()
    )
    prefect_server.restart()
    again = httpx.get(f"{prefect_server.api_url}/flows/{flow['id']}").raise_for_status().json()
    assert again["name"] == "fixture-check"
