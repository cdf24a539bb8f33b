#!/usr/bin/env python3
"""Unwrap tradeguard data keys with an independent implementation (the `cryptography` package),
so tests/secrets.sh can look for every data key in logs and dumps. Also checks that the published
wrap format (src/crypto/rootkey.rs) can be read by someone else's AES-GCM and HKDF.

stdin: lines "name<TAB>version<TAB>purpose<TAB>wrapped-hex"; argv[1]: the root key file.
stdout: one data key per line, hex.
"""
import sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

root = bytes.fromhex(open(sys.argv[1]).read().strip())
wrap_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tradeguard v1", info=b"key-wrapping").derive(root)
for line in sys.stdin:
    if not line.strip():
        continue
    name, version, purpose, wrapped = line.rstrip("\n").split("\t")
    blob = bytes.fromhex(wrapped)
    assert blob[0] == 1, "unknown wrap format"
    aad = b"tradeguard-wrap-v1\0" + name.encode() + b"\0" + int(version).to_bytes(4, "big") + b"\0" + purpose.encode()
    print(AESGCM(wrap_key).decrypt(blob[1:13], blob[13:], aad).hex())
