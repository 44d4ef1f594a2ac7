"""API keys: format, shown once, hashed at rest, revocation, expiry, rotation, the bootstrap key, the CLI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from app import cli
from app.api.clock import get_now
from app.auth import keys
from app.auth.models import ApiKey, Principal
from app.db.base import utcnow
from tests.factories import make_pairs, make_project


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class TestKeyFormat:
    def test_generated_keys_are_well_formed_and_distinct(self) -> None:
        made = {keys.generate() for _ in range(200)}
        assert len(made) == 200
        assert all(k.startswith("real_") and len(k) == keys.KEY_LENGTH and keys.well_formed(k) for k in made)

    def test_a_changed_character_breaks_the_checksum(self) -> None:
        key = keys.generate()
        flipped = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
        assert not keys.well_formed(flipped)
        assert not keys.well_formed(key[:-1])


class TestKeysApi:
    def test_create_list_revoke(self, client: Any) -> None:
        created = client.post("/v1/keys", json={"role": "annotator", "name": "ann"})
        assert created.status_code == 201
        secret = created.json()["key"]
        assert keys.well_formed(secret)
        assert client.get("/v1/me", headers=bearer(secret)).json()["name"] == "ann"
        listed = client.get("/v1/keys").json()["items"]
        assert [k["prefix"] for k in listed] == [secret[:12]]
        assert secret not in client.get("/v1/keys").text
        assert client.delete(f"/v1/keys/{created.json()['id']}").status_code == 204
        refused = client.get("/v1/me", headers=bearer(secret))
        assert refused.status_code == 401
        assert refused.json()["detail"] == "this API key was revoked"
        assert client.get("/v1/keys").json()["items"][0]["revoked_at"] is not None
        actions = [e["action"] for e in client.get("/v1/audit").json()["items"]]
        assert actions == ["principal.created", "key.created", "key.revoked"]

    def test_expired_key_is_refused(self, client: Any) -> None:
        soon = (utcnow() + timedelta(minutes=5)).isoformat()
        secret = client.post("/v1/keys", json={"role": "data_team", "name": "dt", "expires_at": soon}).json()[
            "key"
        ]
        assert client.get("/v1/me", headers=bearer(secret)).status_code == 200
        later = utcnow() + timedelta(minutes=6)
        client.app.dependency_overrides[get_now] = lambda: later
        assert client.get("/v1/me", headers=bearer(secret)).json()["detail"] == "this API key has expired"

    def test_past_expiry_unknown_project_and_role_change_are_refused(self, client: Any) -> None:
        past = (utcnow() - timedelta(minutes=1)).isoformat()
        assert (
            client.post("/v1/keys", json={"role": "admin", "name": "x", "expires_at": past}).status_code
            == 422
        )
        bad = client.post(
            "/v1/keys",
            json={"role": "annotator", "name": "y", "projects": ["00000000-0000-4000-8000-000000000000"]},
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "projects[0]"
        client.post("/v1/keys", json={"role": "annotator", "name": "z"})
        clash = client.post("/v1/keys", json={"role": "admin", "name": "z"})
        assert clash.status_code == 409
        assert client.post("/v1/keys", json={"role": "root", "name": "w"}).status_code == 422

    def test_rotation_keeps_the_annotators_identity(self, client: Any, session: Any) -> None:
        project = make_project(session)
        make_pairs(session, project, 1)
        session.commit()
        body = {"role": "annotator", "name": "rotating", "projects": [str(project.id)]}
        old = client.post("/v1/keys", json=body).json()
        assignment = client.post(f"/v1/projects/{project.id}/queue/claim", headers=bearer(old["key"])).json()
        client.delete(f"/v1/keys/{old['id']}")
        new = client.post("/v1/keys", json={"role": "annotator", "name": "rotating"}).json()
        assert new["principal"]["id"] == old["principal"]["id"]
        assert new["principal"]["projects"] == [str(project.id)]
        labelled = client.post(
            f"/v1/assignments/{assignment['assignment_id']}/label",
            json={"choice": "a"},
            headers=bearer(new["key"]),
        )
        assert labelled.status_code == 201
        assert labelled.json()["annotator"] == "rotating"

    def test_annotator_of_another_project_cannot_claim(self, client: Any, session: Any) -> None:
        p, q = make_project(session, name="P"), make_project(session, name="Q")
        make_pairs(session, p, 1)
        session.commit()
        outsider = client.post("/v1/keys", json={"role": "annotator", "name": "o", "projects": [str(q.id)]})
        response = client.post(f"/v1/projects/{p.id}/queue/claim", headers=bearer(outsider.json()["key"]))
        assert response.status_code == 404
        on_behalf = client.post(
            f"/v1/projects/{p.id}/queue/claim",
            json={"annotator": "x"},
            headers=bearer(outsider.json()["key"]),
        )
        assert on_behalf.status_code in (403, 404)


class TestBootstrapKey:
    def test_bootstrap_key_stops_once_an_admin_key_exists(self, client: Any) -> None:
        admin = client.post("/v1/keys", json={"role": "admin", "name": "ops"}).json()["key"]
        refused = client.get("/v1/me")
        assert refused.status_code == 401
        assert "disabled" in refused.json()["detail"]
        assert client.get("/v1/me", headers=bearer(admin)).json()["role"] == "admin"


class TestNoPlaintext:
    def test_no_table_holds_a_key_in_plaintext(self, client: Any, db: Any, session: Any) -> None:
        project = make_project(session)
        make_pairs(session, project, 2)
        session.commit()
        secrets = []
        for n, role in enumerate(["annotator", "data_team", "annotator", "admin"]):
            body = {"role": role, "name": f"p{n}"} | (
                {"projects": [str(project.id)]} if role != "admin" else {}
            )
            created = client.post("/v1/keys", json=body).json()
            secrets.append(created["key"])
        client.post(f"/v1/projects/{project.id}/queue/claim", headers=bearer(secrets[0]))
        client.get(f"/v1/projects/{project.id}/stats", headers=bearer(secrets[1]))
        client.delete(
            f"/v1/keys/{client.get('/v1/keys', headers=bearer(secrets[3])).json()['items'][0]['id']}",
            headers=bearer(secrets[3]),
        )
        needles = [*secrets, *(s[5:] for s in secrets)]
        with db.engine.connect() as conn:
            table_names = inspect(conn).get_table_names()
            scanned = 0
            for table in table_names:
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    blob = " ".join(str(v) for v in row)
                    scanned += 1
                    assert not any(n in blob for n in needles), f"a key in plaintext in {table}"
        assert scanned > 10
        with db.session() as s:
            stored = s.scalars(select(ApiKey.key_hash)).all()
        assert len(stored) == 4
        assert all(len(h) == 64 for h in stored)


class TestCli:
    def test_create_list_revoke(self, db: Any, capsys: pytest.CaptureFixture[str]) -> None:
        assert cli.main(["keys", "create", "--role", "admin", "--name", "first-admin"]) == 0
        out = capsys.readouterr().out
        secret = out.strip().splitlines()[-1]
        assert keys.well_formed(secret)
        key_id = out.splitlines()[0].split(": ")[1]
        assert cli.main(["keys", "list"]) == 0
        listed = capsys.readouterr().out
        assert "first-admin" in listed
        assert secret not in listed
        assert cli.main(["keys", "revoke", key_id]) == 0
        assert cli.main(["keys", "create", "--role", "annotator", "--name", "first-admin"]) == 1
        assert "exists with role" in capsys.readouterr().err

    def test_create_a_reviewer_and_clear_the_flag(self, db: Any, capsys: pytest.CaptureFixture[str]) -> None:
        assert cli.main(["keys", "create", "--role", "annotator", "--name", "rev", "--reviewer"]) == 0
        assert "(annotator, reviewer)" in capsys.readouterr().out
        with db.session() as s:
            assert s.scalars(select(Principal.reviewer).where(Principal.name == "rev")).one() is True
        assert cli.main(["keys", "create", "--role", "annotator", "--name", "rev", "--no-reviewer"]) == 0
        assert "(annotator)" in capsys.readouterr().out
        with db.session() as s:
            assert s.scalars(select(Principal.reviewer).where(Principal.name == "rev")).one() is False
