"""SSH to a GCE VM through OS Login, gcloud-free: the real google-cloud-os-login client registers
offload's key with a fake OS Login API (tests/fakes/oslogin.py, the real REST wire shape), the
login profile's POSIX user is the one SSH'd as, and a real OpenSSH server on loopback (which, like
an OS Login VM, accepts only registered keys) lets it in. Errors name the field and the fix."""

from __future__ import annotations

import os
import stat

import pytest

from offload.attach._ssh import connect
from offload.backends.gce import GceBackend
from offload.errors import BackendError, UsageError
from offload.store import Store

EMAIL = "ada@example.com"
PROJECT = "proj-1"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    from tests.sshd_server import Sshd, why_cannot_run

    reason = why_cannot_run()
    if reason:
        pytest.skip(f"no OpenSSH server here: {reason}")
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture
def oslogin(sshd):
    from tests.fakes.oslogin import FakeOsLogin

    fake = FakeOsLogin(posix_user=sshd.user, authorized_keys=sshd.root / "authorized_keys").start()
    yield fake
    fake.stop()


def backend(tmp_path, **options) -> GceBackend:
    return GceBackend(Store((tmp_path / "store").as_uri()), project=PROJECT, credentials="anonymous", **options)


def run(route, *argv: str) -> str:
    client = connect(route)
    try:
        _in, out, _err = client.exec_command(" ".join(argv))
        return out.read().decode().strip()
    finally:
        client.close()


def test_os_login_registers_offloads_key_and_ssh_goes_in_as_the_posix_user(tmp_path, sshd, oslogin, offload_home):
    gce = backend(tmp_path, os_login=True, os_login_user=EMAIL, os_login_endpoint=oslogin.url,
                  ssh_host="127.0.0.1", ssh_port=sshd.port)
    key = offload_home / "ssh" / "offload_ed25519"
    assert not key.exists()
    route = gce.attach_route({}, None)

    # offload made its own key, private to the user, and registered its public half
    assert route.key_file == str(key) and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert route.user == sshd.user  # the login profile's POSIX name, not a guess
    [req] = oslogin.requests
    assert req["path"] == f"/v1/users/{EMAIL}:importSshPublicKey"
    assert req["query"]["projectId"] == PROJECT
    assert req["body"]["key"] == (offload_home / "ssh" / "offload_ed25519.pub").read_text().strip()
    assert "BEGIN" not in req["body"]["key"] and req["body"]["key"].startswith("ssh-ed25519 ")
    assert run(route, "whoami") == sshd.user

    # the next attach reuses the same key (one key in the profile, not one per attach)
    again = gce.attach_route({}, None)
    assert again.key_file == route.key_file and len(oslogin.keys[EMAIL]) == 1
    assert run(again, "echo", "ok") == "ok"


def test_an_unregistered_key_is_refused_naming_os_login(tmp_path, sshd, oslogin, offload_home):
    """The sshd accepts only keys OS Login knows: without registration the same key is refused."""
    from offload.backends.base import ssh_route
    from offload.backends.gce.oslogin import offload_key

    key = offload_key()
    with pytest.raises(BackendError) as err:
        connect(ssh_route({"ssh_host": "127.0.0.1", "ssh_port": sshd.port, "ssh_user": sshd.user,
                           "ssh_key": str(key)}, hint="register it with OS Login"))
    assert err.value.field == "ssh_key" and "refused the key" in str(err.value)


def test_os_login_refused_names_the_role(tmp_path, oslogin, offload_home):
    oslogin.denied.add(EMAIL)
    gce = backend(tmp_path, os_login=True, os_login_user=EMAIL, os_login_endpoint=oslogin.url, ssh_host="127.0.0.1")
    with pytest.raises(BackendError) as err:
        gce.attach_route({}, None)
    assert err.value.field == "os_login"
    assert EMAIL in str(err.value) and "roles/compute.osAdminLogin" in err.value.hint


def test_os_login_without_an_account_email_names_the_option(tmp_path, oslogin, offload_home):
    gce = backend(tmp_path, os_login=True, os_login_endpoint=oslogin.url, ssh_host="127.0.0.1")
    with pytest.raises(UsageError) as err:
        gce.attach_route({}, None)
    assert err.value.field == "os_login_user" and "os_login_user" in err.value.hint
    assert not oslogin.requests


def test_a_blocked_port_22_names_the_firewall_rule_to_create(tmp_path, oslogin, offload_home):
    import socket

    with socket.socket() as s:  # a port nothing listens on: what a dropped tcp:22 leaves you with
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gce = backend(tmp_path, os_login=True, os_login_user=EMAIL, os_login_endpoint=oslogin.url,
                  ssh_host="127.0.0.1", ssh_port=port, network="global/networks/lab")
    with pytest.raises(BackendError) as err:
        connect(gce.attach_route({}, None))
    assert err.value.field == "ssh_host" and "cannot reach" in str(err.value)
    assert "offload-allow-ssh on network lab" in err.value.hint and "tcp:22" in err.value.hint


def test_user_credentials_find_their_own_email_and_send_their_token(tmp_path, sshd, oslogin, offload_home, monkeypatch):
    """With user credentials (what `gcloud auth application-default login` writes) offload needs no
    os_login_user: the account's email comes from the OpenID userinfo endpoint, and the OS Login
    request carries the user's bearer token (refreshed at the credentials' token endpoint)."""
    from google.oauth2.credentials import Credentials

    from offload.backends.gce import oslogin as osl

    monkeypatch.setenv("OFFLOAD_GOOGLE_USERINFO_URL", f"{oslogin.url}/v1/userinfo")
    creds = Credentials(token=None, refresh_token="rt", client_id="cid", client_secret="cs",
                        token_uri=f"{oslogin.url}/token")
    email = osl.account_email(creds, None)
    assert email == oslogin.token_email
    posix = osl.import_key(credentials=creds, endpoint=oslogin.url, user=email, project=PROJECT,
                           key=osl.public_key(osl.offload_key()))
    assert posix == sshd.user
    [imported] = [r for r in oslogin.requests if "importSshPublicKey" in r["path"]]
    assert imported["path"] == f"/v1/users/{oslogin.token_email}:importSshPublicKey"
    assert {k.lower(): v for k, v in imported["headers"].items()}["authorization"] == "Bearer tok-1"
    assert [r["path"] for r in oslogin.requests if r["path"] == "/token"] == ["/token"]  # refreshed once

    oslogin.token_email = None  # a token without the email scope: the option is named
    with pytest.raises(UsageError) as err:
        osl.account_email(Credentials(token=None, refresh_token="rt", client_id="cid", client_secret="cs",
                                      token_uri=f"{oslogin.url}/token"), None)
    assert err.value.field == "os_login_user"
