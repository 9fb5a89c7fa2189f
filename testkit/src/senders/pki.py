"""Test PKI for the sender tests: a CA, a server certificate for 127.0.0.1/localhost, a client certificate, a client
certificate from another CA, and an expired client certificate. Usage: pki.py OUT_DIR"""
import datetime, ipaddress, os, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID

out = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)


def key():
    return ec.generate_private_key(ec.SECP256R1())


def write(name, k, cert):
    with open(os.path.join(out, name + ".key"), "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(os.path.join(out, name + ".pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def ca(cn):
    k = key()
    n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    c = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(k.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
         .sign(k, hashes.SHA256()))
    return k, c


def leaf(cn, ca_key, ca_cert, server, start, end):
    k = key()
    b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(ca_cert.subject).public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return k, b.sign(ca_key, hashes.SHA256())


ca_key, ca_cert = ca("logferry test CA")
other_key, other_cert = ca("another CA")
write("ca", ca_key, ca_cert)
write("other_ca", other_key, other_cert)
good = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
write("server", *leaf("localhost", ca_key, ca_cert, True, *good))
write("client", *leaf("client", ca_key, ca_cert, False, *good))
write("foreign_client", *leaf("client", other_key, other_cert, False, *good))
write("expired_client", *leaf("client", ca_key, ca_cert, False, now - datetime.timedelta(days=10), now - datetime.timedelta(days=2)))
