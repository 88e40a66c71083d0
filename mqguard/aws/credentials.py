"""The instance role's credentials, fetched through mqguard's own IMDSv2 client.

botocore's instance-metadata provider reads whatever IMDS answers, however
large or slow (a 300 MB answer took mqguard from 28 to 673 MiB; a dripping one
stalled the Unhealthy report). This provider takes its place in botocore's
chain: the same IMDSv2 client as everything else (token, whole-request
deadline, 8 KiB answers), the role name and every field validated, refreshed
before expiry by botocore's RefreshableCredentials. Static credentials in the
environment or the shared files still come first, as before.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

from botocore.credentials import CredentialProvider, RefreshableCredentials

from mqguard.aws.imds import Imds, ImdsError, ImdsNotFound
from mqguard.base.untrusted import load_json

_ROLE = re.compile(r"^[\w+=,.@-]{1,64}$")
_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")
_FIELD_MAX = 4096
FETCH_WITHIN = 5.0  # seconds for the whole fetch, retries included


class ImdsRoleCredentials(CredentialProvider):  # type: ignore[misc]
    METHOD = "mqguard-iam-role"
    CANONICAL_NAME = "Ec2InstanceMetadata"

    def __init__(self, imds: Imds) -> None:
        super().__init__()
        self.imds = imds

    def load(self) -> Optional[RefreshableCredentials]:
        try:
            metadata = self.fetch()
        except ImdsNotFound:
            return None  # no instance role: botocore goes on (and says NoCredentialsError)
        except (ImdsError, ValueError):
            return None
        return RefreshableCredentials.create_from_metadata(metadata=metadata, refresh_using=self.fetch,
                                                           method=self.METHOD)

    def fetch(self) -> Dict[str, Any]:
        """botocore's credential metadata (access_key, secret_key, token, expiry_time); ImdsError/ValueError else."""
        listing = self.imds.get("meta-data/iam/security-credentials/", within=FETCH_WITHIN).strip()
        role = listing.splitlines()[0].strip() if listing else ""
        if not _ROLE.fullmatch(role):
            raise ValueError("instance metadata gave an invalid role name")
        doc = load_json(self.imds.get(f"meta-data/iam/security-credentials/{role}", within=FETCH_WITHIN))
        if not isinstance(doc, dict) or doc.get("Code", "Success") != "Success":
            raise ValueError("instance metadata has no usable credentials for the role")
        fields = {k: doc.get(k) for k in ("AccessKeyId", "SecretAccessKey", "Token", "Expiration")}
        if not all(isinstance(v, str) and 0 < len(v) <= _FIELD_MAX and v.isprintable() for v in fields.values()):
            raise ValueError("instance metadata gave malformed credentials")
        if not _KEY_ID.fullmatch(str(fields["AccessKeyId"])):
            raise ValueError("instance metadata gave a malformed access key id")
        return {"access_key": fields["AccessKeyId"], "secret_key": fields["SecretAccessKey"],
                "token": fields["Token"], "expiry_time": fields["Expiration"]}


def install(session: Any, imds: Imds) -> None:
    """Put the provider where botocore's own instance-metadata provider was."""
    resolver = session.get_component("credential_provider")
    resolver.insert_before("iam-role", ImdsRoleCredentials(imds))
    resolver.remove("iam-role")
