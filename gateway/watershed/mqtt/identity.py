"""Who a client is at the broker, known before connecting: the broker takes a client's identity
from its certificate's CN (or its user name) and makes it the client id and the ACL's ``%u``
(deploy/mosquitto/watershed.conf). A program whose own id differs would connect fine and then be
refused every topic of its own, silently under MQTT 3.1.1 (mosquitto acknowledges a denied
publish and grants a denied subscription), so it refuses to start instead.
"""

from __future__ import annotations

from pathlib import Path


def certificate_cn(cert_file: str | Path) -> str | None:
    """The subject CN of a PEM certificate; None if it has none. Raises OSError, ValueError."""
    # Imported here: only a config with a certificate needs it (~10 MB on a Pi otherwise).
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    certificate = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def identity_problem(own_id: str, username: str, cert_file: str) -> tuple[str, str] | None:
    """``(key, message)`` when the broker would know this client by another name than
    ``own_id``; None when both agree."""
    if cert_file:
        try:
            cn = certificate_cn(cert_file)
        except FileNotFoundError:
            cn = own_id  # not there yet (a config skeleton): the daemon names a missing file
        except (OSError, ValueError) as e:
            return "cert_file", f"cannot read the certificate {cert_file}: {e}"
        if cn != own_id:
            return ("cert_file", f"the certificate's CN is {cn!r} but this program's id is "
                                 f"{own_id!r}: the broker knows it as {cn!r} (its user name and "
                                 f"client id) and refuses it {own_id!r}'s topics; use a "
                                 f"certificate made for {own_id!r} (deploy/watershed-pki.sh)")
    if username and username != own_id:
        return ("username", f"{username!r} differs from this program's id {own_id!r}: the "
                            f"broker knows it as {username!r} (its client id, and the ACL's "
                            f"%u) and refuses it {own_id!r}'s topics; make them the same")
    return None
