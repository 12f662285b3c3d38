"""TLS certificates for a SuperLink and the SuperNode key pairs Flower's node authentication uses.

A federation made here gets its own certificate authority: the coordinator keeps `ca.key`, hands
`ca.crt` to every site (to verify the server), and serves with `server.crt`/`server.key`. Each site
makes its own EC P-384 key pair (OpenSSH format, as Flower reads it) and sends only the public key to the
coordinator, who registers it; a SuperNode whose key is not registered is refused."""
from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..errors import BadInputError


@dataclass
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SlicerLeap federation"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def make_tls_files(folder: str | Path, hosts=("127.0.0.1", "localhost"), days: int = 365) -> TlsFiles:
    """A CA and a server certificate valid for `hosts` (IP addresses or DNS names) in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca = (x509.CertificateBuilder().subject_name(_name("SlicerLeap federation CA")).issuer_name(_name("SlicerLeap federation CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA384()))
    key = ec.generate_private_key(ec.SECP384R1())
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days)).add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA384()))
    files = TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, files.server_key)
    _write_key(ca_key, folder / "ca.key")
    return files


def make_node_keys(folder: str | Path, name: str, overwrite: bool = False) -> tuple[Path, Path]:
    """(private key, public key) of a SuperNode, OpenSSH format; only the .pub file leaves the site. An existing
    key pair is replaced only with `overwrite`: the coordinator registered its public key, so a new one locks
    the site out until the coordinator registers the new .pub."""
    folder = Path(folder)
    private, public = folder / name, folder / f"{name}.pub"
    if not overwrite and (private.exists() or private.is_symlink()):
        raise BadInputError(f"A private key already exists at {private}; making a new one would replace it.",
                            f"Keep using it (the coordinator needs {public}), choose another --out or --name, "
                            "or add --force to replace it (then send the new .pub to the coordinator).")
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))
    return private, public
