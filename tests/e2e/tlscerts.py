"""Test certificates made with openssl (on every Debian machine): a CA, a broker certificate for
127.0.0.1 and localhost, a client certificate from the same CA, and one from a CA nobody trusts.
Keys are unencrypted PKCS#8, as Strom reads them."""
import ssl
import subprocess
from pathlib import Path


def _run(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(d, name):
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
         "-days", "2", "-subj", f"/CN={name}", cwd=d)


def _signed(d, name, ca, subject, extensions):
    _run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.rawkey", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    _run("pkcs8", "-topk8", "-nocrypt", "-in", f"{name}.rawkey", "-out", f"{name}.key", cwd=d)
    # Extensions make an X.509 v3 certificate; webpki (rustls) refuses v1 ones.
    (d / f"{name}.ext").write_text(extensions)
    _run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
         "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


class Certs:
    def __init__(self, d: Path):
        d.mkdir(parents=True, exist_ok=True)
        _ca(d, "ca")
        _ca(d, "rogue-ca")
        _signed(d, "broker", "ca", "/CN=broker", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        _signed(d, "client", "ca", "/CN=alice/OU=test", "extendedKeyUsage=clientAuth\n")
        _signed(d, "rogue", "rogue-ca", "/CN=mallory", "extendedKeyUsage=clientAuth\n")
        # Kafka's PEM keystore (KIP-651): the private key and the certificate chain in one file.
        (d / "broker.pem").write_text((d / "broker.key").read_text() + (d / "broker.crt").read_text())
        self.dir = d
        self.ca = str(d / "ca.crt")
        self.keystore = str(d / "broker.pem")
        self.client_cert, self.client_key = str(d / "client.crt"), str(d / "client.key")
        self.rogue_cert, self.rogue_key = str(d / "rogue.crt"), str(d / "rogue.key")

    def new_broker_keystore(self, name):
        """Another key and certificate for the broker from the same CA, as PEM keystore text."""
        _signed(self.dir, name, "ca", "/CN=broker", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        return (self.dir / f"{name}.key").read_text() + (self.dir / f"{name}.crt").read_text()

    def new_ca(self, name):
        """Another CA (a rotation to a new one); returns its certificate's path."""
        _ca(self.dir, name)
        return str(self.dir / f"{name}.crt")

    def node_keystore(self, name="node", names="IP:127.0.0.1,DNS:localhost", ca="ca", cn=None):
        """A cluster node's key and certificate: a server certificate for `names` (127.0.0.1)
        that it also presents as a client to the other nodes (mutual TLS), so both key usages.
        Its subject is CN=`cn` (default `name`). Returns the PEM keystore's path;
        `<dir>/<name>.crt` and `.key` are the parts."""
        _signed(self.dir, name, ca, f"/CN={cn or name}",
                f"subjectAltName={names}\nextendedKeyUsage=serverAuth,clientAuth\n")
        path = self.dir / f"{name}.pem"
        path.write_text((self.dir / f"{name}.key").read_text() + (self.dir / f"{name}.crt").read_text())
        return str(path)

    def pkcs12(self, name, password, legacy=False):
        """`<name>`'s key and certificate with the CA's as a PKCS12 keystore, as OpenSSL 3
        writes one (PBES2, AES-256, HMAC-SHA-256), or in the legacy encryption (3DES/RC2, SHA-1)."""
        out = f"{name}{'-legacy' if legacy else ''}.p12"
        _run("pkcs12", "-export", *(["-legacy"] if legacy else []), "-in", f"{name}.crt", "-inkey", f"{name}.key",
             "-certfile", "ca.crt", "-passout", f"pass:{password}", "-out", out, cwd=self.dir)
        return str(self.dir / out)

    def pkcs12_truststore(self, password, ca="ca"):
        """A PKCS12 truststore holding `ca`'s certificate and no key."""
        out = f"{ca}-trust.p12"
        _run("pkcs12", "-export", "-nokeys", "-in", f"{ca}.crt", "-passout", f"pass:{password}", "-out", out, cwd=self.dir)
        return str(self.dir / out)

    def der(self, name):
        """A certificate of ours in DER, as a TLS peer presents it."""
        return ssl.PEM_cert_to_DER_cert((self.dir / f"{name}.crt").read_text())
