import pytest

from recoverctl.core.compose_model import parse_compose
from recoverctl.errors import ProjectFileError


def test_reads_name_services_and_db_clients() -> None:
    model = parse_compose(
        {
            "name": "vault-dev",
            "services": {
                "db": {"image": "postgres"},
                "backend": {"depends_on": {"db": {"condition": "service_healthy"}}},
                "worker": {"depends_on": ["db"]},
                "proxy": {"depends_on": ["backend"]},
            },
        },
        "docker-compose.dev.yml",
    )
    assert model.name == "vault-dev"
    assert model.services == ("backend", "db", "proxy", "worker")
    assert model.db_clients == ("backend", "worker")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([], "no top-level mapping"),
        ({"services": {"db": {}}}, "no valid top-level `name:`"),
        ({"name": "Bad Name", "services": {"db": {}}}, "no valid top-level `name:`"),
        ({"name": "x", "services": {}}, "defines no services"),
        ({"name": "x", "services": {"web": {}}}, "no `db` service"),
    ],
)
def test_rejects_what_recoverctl_cannot_drive(data: object, fragment: str) -> None:
    with pytest.raises(ProjectFileError) as info:
        parse_compose(data, "c.yml")
    assert fragment in info.value.message
    assert info.value.hint and "docker compose -f c.yml config" in info.value.hint
