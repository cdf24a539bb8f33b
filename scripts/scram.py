#!/usr/bin/env python3
"""Print a SCRAM-SHA-256 verifier for a password read from stdin (RFC 5802/7677).

Used so that a plaintext password never reaches the server, its logs or pg_stat_statements:
`ALTER ROLE r PASSWORD 'SCRAM-SHA-256$...'` stores the verifier as is.
"""
import base64
import hashlib
import hmac
import os
import sys

password = sys.stdin.readline().rstrip("\n").encode()
salt = os.urandom(16)
iterations = 4096
salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
stored_key = hashlib.sha256(client_key).digest()
server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
b64 = lambda b: base64.b64encode(b).decode()
print(f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}")
