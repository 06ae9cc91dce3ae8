"""A small synchronous client for OMX services (see proto/README.md for the wire contract).

Run ./generate.sh first; it writes the protoc output to omx_proto/. Use Debian's
/usr/bin/python3 with python3-protobuf.

    from omx_client import Client, load_key
    client = Client("tcp:127.0.9.2:7701", key=load_key("/tmp/pyc/cluster.key"),
                    source_address="127.0.9.1")
    for member in client.members().members:
        ...
    client = Client("unix:/run/omx/discovery.sock")   # no auth on Unix sockets
"""

import hashlib
import hmac
import os
import socket
import struct
import sys
import threading
import time

_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)

try:
    from omx_proto import common_pb2, discovery_pb2
except ImportError as error:  # pragma: no cover - a setup problem, say how to fix it
    raise ImportError(
        f"cannot load the generated OMX messages ({error}): run {_here}/generate.sh "
        "and use /usr/bin/python3 (Debian's python3-protobuf)"
    ) from error

MAX_FRAME = 16 * 1024 * 1024
NONCE_EPOCH_BYTES = 8
DISCOVERY_PORT = 7701


class OMXError(Exception):
    """A call that did not succeed: a non-OK status, or a failure of the connection itself."""

    def __init__(self, method, peer, status, error):
        self.method = method
        self.peer = peer
        self.status = status  # numeric omx.StatusCode
        self.error = error
        try:
            self.status_name = common_pb2.StatusCode.Name(status)
        except ValueError:
            self.status_name = f"STATUS_{status}"
        super().__init__(f"{method} to {peer}: {self.status_name}: {error}")


def load_key(path):
    """Reads a cluster key file: 64 hex digits (the 32 key bytes)."""
    try:
        with open(path, "r", encoding="ascii") as handle:
            text = handle.read().strip()
    except OSError as error:
        raise ValueError(f"{path}: cannot read the cluster key: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: a cluster key is 64 hex digits, found non-ASCII bytes") from error
    if len(text) != 64:
        raise ValueError(f"{path}:1: a cluster key is 64 hex digits, found {len(text)} characters")
    try:
        return bytes.fromhex(text)
    except ValueError as error:
        raise ValueError(f"{path}:1: a cluster key is 64 hex digits: {error}") from error


def _field(data):
    return struct.pack(">I", len(data)) + data


def signing_bytes(envelope):
    """The bytes the MAC covers, exactly as proto/README.md lists them (mac itself excluded)."""
    auth = envelope.auth
    return b"".join(
        [
            b"OMX1",
            struct.pack(">QI", envelope.call_id, envelope.kind),
            _field(envelope.method.encode("utf-8")),
            struct.pack(">I", envelope.status),
            _field(envelope.error.encode("utf-8")),
            struct.pack(">IIQ", envelope.deadline_ms, auth.node_id, auth.timestamp_ms),
            _field(auth.nonce),
            _field(envelope.body),
        ]
    )


def compute_mac(key, envelope):
    return hmac.new(key, signing_bytes(envelope), hashlib.sha256).digest()


class Signer:
    """Signs envelopes for one sender: a random 8-byte epoch per process, then a counter."""

    _lock = threading.Lock()
    _epoch = os.urandom(NONCE_EPOCH_BYTES)
    _counter = 0

    def __init__(self, key, node_id=0):
        if len(key) != 32:
            raise ValueError(f"a cluster key is 32 bytes, got {len(key)}")
        self.key = bytes(key)
        self.node_id = node_id

    @classmethod
    def next_nonce(cls):
        with cls._lock:
            cls._counter += 1
            return cls._epoch + struct.pack(">Q", cls._counter)

    def sign(self, envelope, now_ms=None):
        envelope.auth.node_id = self.node_id
        envelope.auth.timestamp_ms = int(time.time() * 1000) if now_ms is None else now_ms
        envelope.auth.nonce = self.next_nonce()
        envelope.auth.mac = compute_mac(self.key, envelope)

    def verify(self, envelope):
        """True when the envelope carries a MAC made with our key."""
        if not envelope.HasField("auth"):
            return False
        return hmac.compare_digest(envelope.auth.mac, compute_mac(self.key, envelope))


def self_check():
    """Checks the signing string and MAC against the test vector of proto/README.md.

    Returns the MAC hex; raises AssertionError on a mismatch."""
    envelope = common_pb2.Envelope(
        call_id=1,
        kind=common_pb2.REQUEST,
        method="Ping",
        status=common_pb2.OK,
        error="",
        deadline_ms=2000,
        body=bytes.fromhex("0a026869"),
    )
    envelope.auth.node_id = 1
    envelope.auth.timestamp_ms = 1700000000000
    envelope.auth.nonce = b"\xab" * 16
    expected_string = bytes.fromhex(
        "4f4d5831 0000000000000001 00000000 00000004 50696e67 00000000 00000000 000007d0"
        " 00000001 0000018bcfe56800 00000010 abababababababababababababababab 00000004 0a026869"
        .replace(" ", "")
    )
    expected_mac = "d658cdc0b7adb400ee57afee060fb3ec923e1616737d96aa7c63291d555692a0"
    got_string = signing_bytes(envelope)
    assert got_string == expected_string, (
        f"signing string mismatch:\n got      {got_string.hex()}\n expected {expected_string.hex()}"
    )
    got_mac = compute_mac(bytes(range(32)), envelope).hex()
    assert got_mac == expected_mac, f"MAC mismatch: got {got_mac}, expected {expected_mac}"
    return got_mac


class Client:
    """One connection to an OMX service.

    endpoint: "tcp:HOST:PORT" (needs `key`, the 32 cluster key bytes; `source_address` is the
    local address to bind, which must be a node address in the service's cluster map) or
    "unix:PATH" (no auth). Calls are made one at a time; the connection opens on first use.
    """

    def __init__(self, endpoint, key=None, source_address=None, node_id=0, timeout_s=5.0):
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.source_address = source_address
        self._sock = None
        self._next_call_id = 0
        if endpoint.startswith("tcp:"):
            host, sep, port = endpoint[4:].rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"bad endpoint {endpoint!r}: expected tcp:HOST:PORT")
            if key is None:
                raise ValueError(f"{endpoint}: TCP calls must be signed: pass the cluster key")
            self._address = (host, int(port))
            self._family = socket.AF_INET
            self.signer = Signer(key, node_id)
            self.peer = f"{host}:{port}"
        elif endpoint.startswith("unix:"):
            path = endpoint[5:]
            if not path:
                raise ValueError(f"bad endpoint {endpoint!r}: expected unix:PATH")
            self._address = path
            self._family = socket.AF_UNIX
            self.signer = None
            self.peer = path
        else:
            raise ValueError(f"bad endpoint {endpoint!r}: expected tcp:HOST:PORT or unix:PATH")

    # Connection ---------------------------------------------------------------------------

    def _connect(self, method):
        if self._sock is not None:
            return self._sock
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout_s)
            if self.source_address and self._family == socket.AF_INET:
                sock.bind((self.source_address, 0))
            sock.connect(self._address)
        except OSError as error:
            sock.close()
            where = f" from {self.source_address}" if self.source_address else ""
            raise OMXError(method, self.peer, common_pb2.UNAVAILABLE,
                           f"cannot connect{where}: {error.strerror or error}") from error
        self._sock = sock
        return sock

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _recv_exact(self, count, method):
        chunks = []
        while count:
            try:
                chunk = self._sock.recv(count)
            except socket.timeout as error:
                self.close()
                raise OMXError(method, self.peer, common_pb2.DEADLINE_EXCEEDED,
                               f"no answer within {self.timeout_s} s") from error
            except OSError as error:
                self.close()
                raise OMXError(method, self.peer, common_pb2.UNAVAILABLE,
                               f"connection failed: {error.strerror or error}") from error
            if not chunk:
                self.close()
                raise OMXError(method, self.peer, common_pb2.UNAVAILABLE,
                               "the service closed the connection")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def _read_envelope(self, method):
        (length,) = struct.unpack(">I", self._recv_exact(4, method))
        if length > MAX_FRAME:
            self.close()
            raise OMXError(method, self.peer, common_pb2.RESOURCE_EXHAUSTED,
                           f"response frame of {length} bytes exceeds {MAX_FRAME}")
        envelope = common_pb2.Envelope()
        try:
            envelope.ParseFromString(self._recv_exact(length, method))
        except Exception as error:  # google.protobuf.message.DecodeError
            self.close()
            raise OMXError(method, self.peer, common_pb2.DATA_LOSS,
                           f"response is not a valid omx.Envelope: {error}") from error
        return envelope

    # Calls --------------------------------------------------------------------------------

    def call(self, method, request_msg, response_cls, deadline_ms=None):
        """Calls `method` with `request_msg`; returns a `response_cls` message.

        Raises OMXError for a non-OK status, a refusal of the connection, or a bad MAC."""
        if deadline_ms is None:
            deadline_ms = int(self.timeout_s * 1000)
        self._next_call_id += 1
        request = common_pb2.Envelope(
            call_id=self._next_call_id,
            kind=common_pb2.REQUEST,
            method=method,
            body=request_msg.SerializeToString(),
            deadline_ms=deadline_ms,
        )
        if self.signer is not None:
            self.signer.sign(request)
        payload = request.SerializeToString()
        sock = self._connect(method)
        try:
            sock.sendall(struct.pack(">I", len(payload)) + payload)
        except OSError as error:
            self.close()
            raise OMXError(method, self.peer, common_pb2.UNAVAILABLE,
                           f"cannot send: {error.strerror or error}") from error

        while True:
            response = self._read_envelope(method)
            if response.call_id == 0:
                # About the connection: a refusal that fails every call in flight.
                self.close()
                raise OMXError(method, self.peer, response.status,
                               response.error or "connection refused by the service")
            if response.call_id == request.call_id:
                break
            # An answer to an earlier call we gave up on: skip it.

        if response.status != common_pb2.OK:
            raise OMXError(method, self.peer, response.status, response.error)
        if self.signer is not None and not self.signer.verify(response):
            self.close()
            raise OMXError(method, self.peer, common_pb2.UNAUTHENTICATED,
                           "response MAC does not verify: the service holds a different "
                           "cluster key or the response was altered")
        result = response_cls()
        try:
            result.ParseFromString(response.body)
        except Exception as error:
            raise OMXError(method, self.peer, common_pb2.DATA_LOSS,
                           f"response body is not a valid {response_cls.DESCRIPTOR.full_name}: {error}") from error
        return result

    def ping(self, payload=b""):
        return self.call("Ping", common_pb2.PingRequest(payload=payload), common_pb2.PingResponse)

    def health(self):
        return self.call("Health", common_pb2.HealthRequest(), common_pb2.HealthResponse)

    def members(self):
        """Discovery.Members: returns omx.discovery.MembersResponse."""
        return self.call("Discovery.Members", discovery_pb2.MembersRequest(),
                         discovery_pb2.MembersResponse)


if __name__ == "__main__":
    print("signing test vector OK, MAC", self_check())
