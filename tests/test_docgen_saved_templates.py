"""The account's saved templates (`/v2/templates`), used as `templateId`: saved once,
listed, rendered with data, private to the account, deleted; a template that does not
parse is refused when it is saved."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.docgen_helpers import DocAccount, assert_error, b64, read_pdf, signup
from tests.folio_process import FolioProcess

TEMPLATE = "<h1>Hello {{ name }}</h1>{% for item in items %}<p>{{ item | upper }}</p>{% endfor %}"


@pytest.fixture(scope="module")
def owner(folio: FolioProcess) -> Iterator[DocAccount]:
    account = signup(folio, "tpl")
    yield account
    account.close()


@pytest.fixture(scope="module")
def stranger(folio: FolioProcess) -> Iterator[DocAccount]:
    account = signup(folio, "tpl-other")
    yield account
    account.close()


def test_a_saved_template_renders_by_its_id(owner: DocAccount) -> None:
    saved = owner.http.post("/v2/templates", json={"name": "greeting", "template": b64(TEMPLATE)})
    assert saved.status_code == 201, saved.text
    template = saved.json()
    assert template["id"].startswith("tpl_") and template["name"] == "greeting"
    assert template["size"] == len(TEMPLATE.encode())
    listed = owner.http.get("/v2/templates").json()
    assert template["id"] in [t["id"] for t in listed]

    body = {"templateId": template["id"], "data": {"name": "Ada", "items": ["one", "two"]}, "async": False}
    answer = owner.http.post("/v2/template/pdf", json=body)
    assert answer.status_code == 201, answer.text
    text = read_pdf(answer.content)[0].text
    assert "Hello Ada" in text and "ONE" in text and "TWO" in text

    assert owner.http.delete(f"/v2/templates/{template['id']}").json() == {"success": True}
    gone = owner.http.post("/v2/template/pdf", json=body)
    assert_error(gone, 400, "templateId")
    assert_error(owner.http.delete(f"/v2/templates/{template['id']}"), 404)


def test_saved_templates_are_private_to_their_account(owner: DocAccount, stranger: DocAccount) -> None:
    saved = owner.http.post("/v1/templates", json={"name": "mine", "template": b64("<p>{{ secret }}</p>")})
    assert saved.status_code == 201, saved.text
    template_id = saved.json()["id"]
    assert template_id not in [t["id"] for t in stranger.http.get("/v2/templates").json()]
    used = stranger.http.post("/v2/template/pdf", json={"templateId": template_id, "async": False})
    assert_error(used, 400, "templateId")
    assert_error(stranger.http.delete(f"/v2/templates/{template_id}"), 404)
    # Still there for its owner.
    assert template_id in [t["id"] for t in owner.http.get("/v2/templates").json()]


@pytest.mark.parametrize(
    "body, field_name",
    [
        ({"name": "broken", "template": b64("{% for x in %}")}, "template"),
        ({"name": "broken", "template": "not base64!!"}, "template"),
        ({"template": b64("<p>x</p>")}, "name"),
        ({"name": "", "template": b64("<p>x</p>")}, "name"),
    ],
)
def test_bad_templates_are_refused_when_saved(owner: DocAccount, body: dict, field_name: str) -> None:
    assert_error(owner.http.post("/v2/templates", json=body), 400, field_name)


def test_the_built_in_gallery_wins_over_nothing(owner: DocAccount) -> None:
    answer = owner.http.post(
        "/v2/template/pdf",
        json={
            "templateId": "receipt",
            "data": {
                "store": "Corner Cafe",
                "number": "R-1",
                "date": "2026-01-15T09:41:00Z",
                "items": [{"name": "Tea", "quantity": 2, "price": 2.5}],
            },
            "async": False,
        },
    )
    assert answer.status_code == 201, answer.text
    text = read_pdf(answer.content)[0].text
    assert "Corner Cafe" in text and "$5.00" in text
