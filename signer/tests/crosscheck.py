"""Independent CloudFront signers for the signer crate's cross-check tests.

Usage (all output on stdout):
  crosscheck.py canned-url KEY KEY_ID URL EXPIRES
  crosscheck.py custom-url KEY KEY_ID URL RESOURCE EXPIRES [START|-] [CIDR|-]
  crosscheck.py sign KEY HASH          (message on stdin; prints CloudFront base64 signature)
"""
import base64
import datetime
import sys

from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding


def load(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def signer_for(path, algorithm):
    key = load(path)
    digest = {"SHA1": hashes.SHA1(), "SHA256": hashes.SHA256()}[algorithm]

    def sign(message):
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(message, ec.ECDSA(digest))
        return key.sign(message, padding.PKCS1v15(), digest)

    return sign


def utc(epoch):
    return datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc)


def main(argv):
    cmd = argv[0]
    if cmd == "canned-url":
        key, key_id, url, expires = argv[1:5]
        print(CloudFrontSigner(key_id, signer_for(key, "SHA1")).generate_presigned_url(url, date_less_than=utc(expires)))
    elif cmd == "custom-url":
        key, key_id, url, resource, expires = argv[1:6]
        start = argv[6] if len(argv) > 6 and argv[6] != "-" else None
        cidr = argv[7] if len(argv) > 7 and argv[7] != "-" else None
        cf = CloudFrontSigner(key_id, signer_for(key, "SHA1"))
        policy = cf.build_policy(resource, utc(expires), date_greater_than=utc(start) if start else None, ip_address=cidr)
        print(cf.generate_presigned_url(url, policy=policy))
    elif cmd == "sign":
        key, algorithm = argv[1:3]
        signature = signer_for(key, algorithm)(sys.stdin.buffer.read())
        print(base64.b64encode(signature).decode().replace("+", "-").replace("=", "_").replace("/", "~"))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv[1:])
