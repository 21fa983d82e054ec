"""SSH to a job's VM through OS Login, without ``gcloud``: the user's public key is registered with
the OS Login API (``users/{user}:importSshPublicKey``, the ``google-cloud-os-login`` client), the
POSIX user name comes from the login profile it returns, and the VM (``enable-oslogin=TRUE`` in its
metadata, set by the backend's ``os_login`` option) lets that user in with that key.

The key: the backend's ``ssh_key`` when set (its ``.pub`` beside it, or derived from it), else an
ed25519 key offload generates once and keeps in ``<data dir>/ssh/offload_ed25519`` (0600).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from offload.errors import BackendError, UsageError
from offload.paths import data_dir

KEY_NAME = "offload_ed25519"
USERINFO_URL = "https://openidconnect.googleapis.com/v1/userinfo"
USERINFO_ENV = "OFFLOAD_GOOGLE_USERINFO_URL"  # tests: a fake
ROLE_HINT = ("grant the account roles/compute.osLogin (or roles/compute.osAdminLogin for sudo) on the "
             "project in IAM; a service account from another project also needs "
             "roles/iam.serviceAccountUser")


def offload_key() -> Path:
    """offload's own SSH key (ed25519, OpenSSH format, 0600), generated on first use."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    path = data_dir() / "ssh" / KEY_NAME
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    tmp = path.with_name(f".{KEY_NAME}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    path.with_suffix(".pub").write_bytes(public + b" jupyter-offload\n")
    try:
        os.link(tmp, path)  # another process may have made one meanwhile: keep the first
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path


def public_key(private: Path) -> str:
    """The OpenSSH public key line of ``private`` (its ``.pub`` file, or derived from the key)."""
    pub = Path(str(private) + ".pub")
    if pub.exists():
        return pub.read_text().strip()
    import paramiko

    try:
        key = paramiko.PKey.from_path(str(private))
    except (paramiko.SSHException, OSError, ValueError) as exc:
        raise UsageError(f"cannot read the SSH key {private}: {exc}", field="ssh_key",
                         hint="an unencrypted OpenSSH private key, or put its .pub beside it") from None
    return f"{key.get_name()} {key.get_base64()}"


def account_email(credentials: Any, configured: str | None) -> str:
    """Whose OS Login profile: ``os_login_user``, else the service account's email, else (user
    credentials, as ``gcloud auth application-default login`` makes) the account's email from
    Google's OpenID userinfo endpoint."""
    email = configured or getattr(credentials, "service_account_email", None) or getattr(
        credentials, "signer_email", None)
    if (not email or email == "default") and getattr(credentials, "refresh_token", None):
        email = _userinfo_email(credentials)
    if not email or email == "default":
        raise UsageError("OS Login needs the account's email, which these credentials do not name",
                         field="os_login_user",
                         hint="offload config set backend gce os_login_user you@example.com")
    return str(email)


def _userinfo_email(credentials: Any) -> str | None:
    from google.auth.transport.requests import AuthorizedSession

    url = os.environ.get(USERINFO_ENV) or USERINFO_URL
    try:
        answer = AuthorizedSession(credentials).get(url, timeout=15)
        return answer.json().get("email") if answer.ok else None
    except Exception:  # no email scope, no network: the caller names os_login_user
        return None


def import_key(*, credentials: Any, endpoint: str | None, user: str, project: str, key: str) -> str:
    """Register ``key`` in ``user``'s OS Login profile; the POSIX user name to SSH as."""
    try:
        from google.api_core import exceptions as gexc
        from google.api_core.client_options import ClientOptions
        from google.cloud import oslogin_v1
        from google.cloud.oslogin_v1 import common
    except ImportError as exc:
        raise UsageError(f"OS Login needs google-cloud-os-login ({exc.name} is missing)", field="os_login",
                         hint="pip install 'jupyter-offload[gce]'") from None
    opts = ClientOptions(api_endpoint=endpoint) if endpoint else None
    client = oslogin_v1.OsLoginServiceClient(transport="rest", credentials=credentials, client_options=opts)
    try:
        answer = client.import_ssh_public_key(parent=f"users/{user}", project_id=project,
                                              ssh_public_key=common.SshPublicKey(key=key))
    except (gexc.PermissionDenied, gexc.Forbidden) as exc:  # REST 403 is Forbidden
        msg = exc.message or str(exc)
        hint = ("enable the OS Login API (oslogin.googleapis.com) in the project" if "has not been used" in msg
                or "disabled" in msg.lower() else ROLE_HINT)
        raise BackendError(f"OS Login refused to register the SSH key for {user} in project {project}: {msg}",
                           field="os_login", hint=hint) from None
    except gexc.GoogleAPICallError as exc:
        raise BackendError(f"OS Login could not register the SSH key for {user}: {exc}", field="os_login",
                           hint="check os_login_user and the project; " + ROLE_HINT) from None
    accounts = list(answer.login_profile.posix_accounts)
    chosen = next((a for a in accounts if a.account_id == project), None) or next(
        (a for a in accounts if a.primary), None) or (accounts[0] if accounts else None)
    if chosen is None or not chosen.username:
        raise BackendError(f"the OS Login profile of {user} has no POSIX account for project {project}",
                           field="os_login", hint=ROLE_HINT)
    return chosen.username
