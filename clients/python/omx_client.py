"""A small synchronous client for OMX services (see proto/README.md for the wire contract).

Run ./generate.sh first; it writes the protoc output to omx_proto/. Use Debian's
/usr/bin/python3 with python3-protobuf.

    from omx_client import Cluster, Migrator
    cluster = Cluster("/tmp/pyc/cluster.map", "/tmp/pyc/cluster.key", source_address="127.0.9.1")
    with cluster.discovery(2) as discovery:             # TCP, signed with the cluster key
        for member in discovery.members().members: ...
    with cluster.migrator(1) as migrator:
        job = migrator.run(["/bin/sleep", "60"])        # home: node 1
        migrator.migrate(job.id, 2)
    with cluster.fsgateway(2) as files:                 # node 2's files
        files.write_file("/tmp/hello", b"hi\\n")
    with Migrator("unix:/run/omx/migrator.sock") as migrator:   # no auth on Unix sockets
        print(migrator.jobs().jobs)

Every failure raises OMXError (method, peer, status name, the service's error); a file
operation the file system refused raises FileError (an OMXError with `errno`).
"""

import contextlib
import errno as _errno
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
    from omx_proto import balancer_pb2, common_pb2, discovery_pb2, fsgateway_pb2, migrator_pb2
except ImportError as error:  # pragma: no cover - a setup problem, say how to fix it
    raise ImportError(
        f"cannot load the generated OMX messages ({error}): run {_here}/generate.sh "
        "and use /usr/bin/python3 (Debian's python3-protobuf)"
    ) from error

MAX_FRAME = 16 * 1024 * 1024
MAX_CHUNK = 1 << 20  # the most FSGateway.Read/Write and Migrator.ReadLog move per call
NONCE_EPOCH_BYTES = 8

# Where services listen (proto/README.md): the same TCP port on every node, and a Unix socket
# in the node's run directory (/run/omx unless --run-dir or OMX_RUN_DIR says otherwise).
DISCOVERY_PORT = 7701
BALANCER_PORT = 7702
MIGRATOR_PORT = 7703
FSGATEWAY_PORT = 7710  # instance K listens on 7710 + K
_PORTS = {"discovery": DISCOVERY_PORT, "balancer": BALANCER_PORT, "migrator": MIGRATOR_PORT,
          "fsgateway": FSGATEWAY_PORT}


def service_port(kind, instance=0):
    """The TCP port of service `kind` ("discovery", "balancer", "migrator", "fsgateway")."""
    if kind not in _PORTS:
        raise ValueError(f"no OMX service {kind!r} (services: {', '.join(_PORTS)})")
    return _PORTS[kind] + (instance if kind == "fsgateway" else 0)


def socket_name(kind, instance=0):
    """The service's Unix socket in a node's run directory, e.g. migrator.sock, fsgateway-0.sock."""
    service_port(kind)
    return f"fsgateway-{instance}.sock" if kind == "fsgateway" else f"{kind}.sock"


# The open(2) flags of FSGateway.Open are the gateway's, i.e. Linux's (whatever the client runs on).
O_RDONLY, O_WRONLY, O_RDWR = 0, 1, 2
O_CREAT, O_EXCL, O_TRUNC, O_APPEND = 0o100, 0o200, 0o1000, 0o2000


class OMXError(Exception):
    """A call that did not succeed: a non-OK status, or a failure of the connection itself."""

    def __init__(self, method, peer, status, error, status_name=None):
        self.method = method
        self.peer = peer
        self.status = status  # numeric omx.StatusCode
        self.error = error
        if status_name is None:
            try:
                status_name = common_pb2.StatusCode.Name(status)
            except ValueError:
                status_name = f"STATUS_{status}"
        self.status_name = status_name
        super().__init__(f"{method} to {peer}: {status_name}: {error}")


class FileError(OMXError):
    """A file operation the gateway carried out and the file system refused.

    The call itself succeeded (status OK); `errno` is the POSIX error number from
    FsResponse.error_number, `error` the gateway's text naming the path."""

    def __init__(self, method, peer, errno_value, error):
        self.errno = errno_value
        name = _errno.errorcode.get(errno_value, f"errno {errno_value}")
        super().__init__(method, peer, common_pb2.OK, error, status_name=name)


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


def parse_map(path):
    """Returns {node_id: (address, [aliases])} from a cluster map.

    Lines are `ID ADDRESS RANGE` (RANGE nodes from ID, the last IPv4 byte counting up) or
    `ID ADDRESS ALIAS` / `ID ADDRESS 0` (another address of node ID); `#` starts a comment."""
    import ipaddress

    nodes = {}
    aliases = []
    with open(path, "r", encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            fields = raw.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) != 3:
                raise ValueError(f"{path}:{number}: expected `ID ADDRESS RANGE`, found `{' '.join(fields)}`")
            node_text, address, range_text = fields
            if not node_text.isdigit() or int(node_text) < 1:
                raise ValueError(f"{path}:{number}: bad node id `{node_text}`")
            node_id = int(node_text)
            if range_text.upper() == "ALIAS" or range_text == "0":
                aliases.append((node_id, address))
                continue
            if not range_text.isdigit() or int(range_text) < 1:
                raise ValueError(f"{path}:{number}: bad RANGE `{range_text}`")
            count = int(range_text)
            if count == 1:
                nodes[node_id] = (address, [])
                continue
            try:
                first = ipaddress.IPv4Address(address)
            except ValueError:
                raise ValueError(f"{path}:{number}: RANGE {count} needs an IPv4 address, not `{address}`") from None
            if first.packed[3] + count - 1 > 255:
                raise ValueError(f"{path}:{number}: range {count} from {address} runs past .255")
            for offset in range(count):
                nodes[node_id + offset] = (str(first + offset), [])
    for node_id, address in aliases:
        if node_id in nodes:
            nodes[node_id][1].append(address)
    if not nodes:
        raise ValueError(f"{path}: the map defines no nodes")
    return nodes


def job_home(job_id):
    """The home node in a job id "HOME.N" (e.g. 2 for "2.17")."""
    home, dot, number = str(job_id).partition(".")
    if not dot or not home.isdigit() or not number.isdigit():
        raise ValueError(f"{job_id!r} is not a job id (HOME.N, e.g. 1.7)")
    return int(home)


def _field(data):
    return struct.pack(">I", len(data)) + data


def socket_end(address):
    """A socket's (host, port) as the signing string names it: "IPv4:port"."""
    return f"{address[0]}:{address[1]}"


def signing_bytes(envelope, receiver):
    """The bytes the MAC covers, exactly as proto/README.md lists them (mac itself excluded):
    `receiver` is the receiving end of the connection, "IPv4:port" (for a request, the service's
    address and port we connected to; for its response, our own)."""
    auth = envelope.auth
    return b"".join(
        [
            b"OMX2",
            _field(receiver.encode("ascii")),
            struct.pack(">QI", envelope.call_id, envelope.kind),
            _field(envelope.method.encode("utf-8")),
            struct.pack(">I", envelope.status),
            _field(envelope.error.encode("utf-8")),
            struct.pack(">IIQ", envelope.deadline_ms, auth.node_id, auth.timestamp_ms),
            _field(auth.nonce),
            _field(envelope.body),
        ]
    )


def compute_mac(key, envelope, receiver):
    return hmac.new(key, signing_bytes(envelope, receiver), hashlib.sha256).digest()


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

    def sign(self, envelope, receiver, now_ms=None):
        """Signs `envelope` for `receiver` ("IPv4:port" of the service's end)."""
        envelope.auth.node_id = self.node_id
        envelope.auth.timestamp_ms = int(time.time() * 1000) if now_ms is None else now_ms
        envelope.auth.nonce = self.next_nonce()
        envelope.auth.mac = compute_mac(self.key, envelope, receiver)

    def verify(self, envelope, receiver):
        """True when the envelope carries a MAC made with our key for `receiver` (our end)."""
        if not envelope.HasField("auth"):
            return False
        return hmac.compare_digest(envelope.auth.mac, compute_mac(self.key, envelope, receiver))


def wire_name(raw):
    """The wire form of file-name bytes `raw` (proto/README.md, "File names"): valid UTF-8 as
    it is, every other byte (and each byte of a U+EF80-U+EFFF character) as U+EF00 + byte.
    For a path given on the command line: wire_name(os.fsencode(path))."""
    chars = []
    index = 0
    while index < len(raw):
        for length in (1, 2, 3, 4):
            try:
                char = raw[index:index + length].decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(char) == 1 and not 0xEF80 <= ord(char) <= 0xEFFF:
                chars.append(char)
                index += length
                break
            if len(char) == 1:
                chars.extend(chr(0xEF00 + byte) for byte in raw[index:index + length])
                index += length
                break
        else:
            chars.append(chr(0xEF00 + raw[index]))
            index += 1
    return "".join(chars)


def name_bytes(name):
    """The file-name bytes of wire name `name`: each U+EF80-U+EFFF character is the byte
    (character - 0xEF00), every other its UTF-8. For printing: sys.stdout.buffer.write(...)."""
    return b"".join(bytes([ord(char) - 0xEF00]) if 0xEF80 <= ord(char) <= 0xEFFF else char.encode("utf-8")
                    for char in name)


def self_check():
    """Checks the signing string and MAC against the test vector of proto/README.md, and the
    file-name vectors.

    Returns the MAC hex; raises AssertionError on a mismatch."""
    for raw, wire in ((b"caf\xe9", "caf\uefe9"), (b"\xff\xfeA", "\uefff\ueffeA"),
                      (b"x\xee\xbe\x85y", "x\uefee\uefbe\uef85y"), ("café/日本".encode(), "café/日本")):
        assert wire_name(raw) == wire, f"wire_name({raw!r}) = {wire_name(raw)!r}, expected {wire!r}"
        assert name_bytes(wire) == raw, f"name_bytes({wire!r}) = {name_bytes(wire)!r}, expected {raw!r}"
        # A job's words from the command line (str, undecodable bytes kept by surrogateescape).
        assert _wire_word(os.fsdecode(raw)) == wire and _wire_word(raw) == wire
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
        "4f4d5832 0000000d 31302e302e302e323a37373031 0000000000000001 00000000 00000004 50696e67"
        " 00000000 00000000 000007d0 00000001 0000018bcfe56800 00000010"
        " abababababababababababababababab 00000004 0a026869"
        .replace(" ", "")
    )
    expected_mac = "ccbc0dc2407b2666d918970ee899a756db0d21d15aa55db9d2d0aac2c8c66f7f"
    got_string = signing_bytes(envelope, "10.0.0.2:7701")
    assert got_string == expected_string, (
        f"signing string mismatch:\n got      {got_string.hex()}\n expected {expected_string.hex()}"
    )
    got_mac = compute_mac(bytes(range(32)), envelope, "10.0.0.2:7701").hex()
    assert got_mac == expected_mac, f"MAC mismatch: got {got_mac}, expected {expected_mac}"
    return got_mac


class Client:
    """One connection to an OMX service.

    endpoint: "tcp:HOST:PORT" (needs `key`, the 32 cluster key bytes; `source_address` is the
    local address to bind, which must be a node address in the service's cluster map) or
    "unix:PATH" (no auth). Calls are made one at a time; the connection opens on first use.
    The subclasses add typed helpers: Discovery, Balancer, Migrator, FSGateway.
    """

    def __init__(self, endpoint, key=None, source_address=None, node_id=0, timeout_s=5.0):
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.source_address = source_address
        self._sock = None
        self._ends = ("", "")  # (ours, the service's) of a TCP connection: see _connect
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
            if self._family == socket.AF_INET:
                # What signatures name: the service's end for requests, ours for answers.
                self._ends = (socket_end(sock.getsockname()), socket_end(sock.getpeername()))
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

    def _recv_exact(self, count, method, timeout_s):
        chunks = []
        while count:
            try:
                chunk = self._sock.recv(count)
            except socket.timeout as error:
                self.close()
                raise OMXError(method, self.peer, common_pb2.DEADLINE_EXCEEDED,
                               f"no answer within {timeout_s:g} s") from error
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

    def _read_envelope(self, method, timeout_s):
        (length,) = struct.unpack(">I", self._recv_exact(4, method, timeout_s))
        if length > MAX_FRAME:
            self.close()
            raise OMXError(method, self.peer, common_pb2.RESOURCE_EXHAUSTED,
                           f"response frame of {length} bytes exceeds {MAX_FRAME}")
        envelope = common_pb2.Envelope()
        try:
            envelope.ParseFromString(self._recv_exact(length, method, timeout_s))
        except OMXError:
            raise
        except Exception as error:  # google.protobuf.message.DecodeError
            self.close()
            raise OMXError(method, self.peer, common_pb2.DATA_LOSS,
                           f"response is not a valid omx.Envelope: {error}") from error
        return envelope

    # Calls --------------------------------------------------------------------------------

    def call(self, method, request_msg, response_cls, timeout_s=None):
        """Calls `method` with `request_msg`; returns a `response_cls` message.

        `timeout_s` (default: the client's) is how long to wait for the answer; it is also sent
        as the envelope's deadline_ms. Raises OMXError for a non-OK status, a refusal of the
        connection, a bad MAC or no answer in time."""
        if timeout_s is None:
            timeout_s = self.timeout_s
        self._next_call_id += 1
        request = common_pb2.Envelope(
            call_id=self._next_call_id,
            kind=common_pb2.REQUEST,
            method=method,
            body=request_msg.SerializeToString(),
            deadline_ms=min(int(timeout_s * 1000), 0xFFFFFFFF),
        )
        sock = self._connect(method)
        if self.signer is not None:
            self.signer.sign(request, self._ends[1])
        payload = request.SerializeToString()
        sock.settimeout(timeout_s)
        try:
            sock.sendall(struct.pack(">I", len(payload)) + payload)
        except OSError as error:
            self.close()
            raise OMXError(method, self.peer, common_pb2.UNAVAILABLE,
                           f"cannot send: {error.strerror or error}") from error

        while True:
            response = self._read_envelope(method, timeout_s)
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
        if self.signer is not None and not self.signer.verify(response, self._ends[0]):
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

    def stats(self):
        """Stats: the service's counters, gauges and histograms (StatsResponse; `omx metrics`)."""
        return self.call("Stats", common_pb2.StatsRequest(), common_pb2.StatsResponse)


class Discovery(Client):
    """A node's Discovery (TCP 7701, RUN_DIR/discovery.sock): membership and service registry."""

    def members(self):
        """Discovery.Members: every map node as this node sees it (MembersResponse)."""
        return self.call("Discovery.Members", discovery_pb2.MembersRequest(),
                         discovery_pb2.MembersResponse)

    def lookup(self, kind, node_id=0):
        """Discovery.Lookup: the live ServiceInstances of `kind` ("migrator", "fsgateway", ...)
        on members that run this node's map and version; node_id 0 = every node."""
        request = discovery_pb2.LookupRequest(kind=kind, node_id=node_id)
        return list(self.call("Discovery.Lookup", request, discovery_pb2.LookupResponse).instances)


class Balancer(Client):
    """A node's Balancer (TCP 7702, RUN_DIR/balancer.sock)."""

    def cluster_load(self):
        """Balancer.ClusterLoad: every map node's own LoadRecord (ClusterLoadResponse)."""
        return self.call("Balancer.ClusterLoad", balancer_pb2.ClusterLoadRequest(),
                         balancer_pb2.ClusterLoadResponse)


def _wire_word(word):
    """An argument, variable or directory (str or bytes) in the wire form of its bytes."""
    return wire_name(word if isinstance(word, bytes) else os.fsencode(str(word)))


def _env_list(env):
    if env is None:
        env = os.environb
    if hasattr(env, "items"):  # a dict, os.environ or os.environb
        return [_wire_word(name) + "=" + _wire_word(value) for name, value in env.items()]
    return [_wire_word(entry) for entry in env]


class Migrator(Client):
    """A node's Migrator (TCP 7703, RUN_DIR/migrator.sock): jobs.

    On the Unix socket the service acts for the calling user (SO_PEERCRED) and forwards calls
    about jobs elsewhere to their home. Over TCP the caller holds the cluster key: the job runs
    as the uid/gid/groups of the RunRequest. A call about a job (kill, wait, read_log, migrate) may
    go to any node: one that is not the job's home forwards it there, and the home to where the
    job runs. Asking the home (job_home(id); Cluster.migrator_for(job)) saves a hop."""

    def run(self, argv, node=0, name="", cwd=None, env=None, uid=None, gid=None, groups=None, nice=None, stay=False, lock=False):
        """Migrator.Run: starts `argv` as a job whose home is the called node; returns its Job
        (state RUNNING, `id` "HOME.N", `pid` its host pid on `where`).

        node: where to start it (0 = the called node, or where its Balancer places it unless
        stay/lock); cwd (default: ours) must exist there; env: a dict or NAME=VALUE list (default:
        our environment; the job's PATH finds argv[0]); uid/gid/groups/nice (default: ours, groups
        being the supplementary ones) count over TCP only, on the Unix socket the kernel says who
        we are. Arguments, variables and cwd may be str or bytes: the job gets their bytes (they
        travel in the wire form of file names)."""
        request = migrator_pb2.RunRequest(
            argv=[_wire_word(arg) for arg in argv], env=_env_list(env), cwd=_wire_word(cwd or os.getcwdb()), node=node,
            name=name, stay=stay, lock=lock,
            uid=os.getuid() if uid is None else uid, gid=os.getgid() if gid is None else gid,
            groups=list(os.getgroups() if groups is None else groups),
            nice=os.nice(0) if nice is None else nice)
        return self.call("Migrator.Run", request, migrator_pb2.Job, timeout_s=max(self.timeout_s, 30))

    def jobs(self, cluster=True):
        """Migrator.List: with `cluster` every node's jobs, each once, from where it runs
        (ListJobsResponse: `jobs`, and `unreachable` nodes); else this node's own."""
        request = migrator_pb2.ListJobsRequest(cluster=cluster)
        return self.call("Migrator.List", request, migrator_pb2.ListJobsResponse,
                         timeout_s=max(self.timeout_s, 5))

    def kill(self, job, signal=0):
        """Migrator.Kill: sends `signal` (0 = SIGTERM) to the job wherever it runs; its Job."""
        request = migrator_pb2.KillRequest(job=job, signal=signal)
        return self.call("Migrator.Kill", request, migrator_pb2.Job, timeout_s=max(self.timeout_s, 15))

    def wait(self, job, timeout_s=None):
        """Migrator.Wait, repeated: the Job once it has ended (state EXITED, `exit` "exit N",
        "signal N" or "lost: why"), or as it is when `timeout_s` (None: no limit) ran out."""
        give_up = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = 30.0 if give_up is None else max(0.0, min(30.0, give_up - time.monotonic()))
            request = migrator_pb2.WaitRequest(job=job, timeout_ms=int(left * 1000))
            answer = self.call("Migrator.Wait", request, migrator_pb2.Job, timeout_s=left + 10)
            if answer.state == migrator_pb2.EXITED or (give_up is not None and time.monotonic() >= give_up):
                return answer

    def read_log(self, job, stream="stdout", offset=0):
        """Migrator.ReadLog, in chunks of up to 1 MiB: the job's `stream` ("stdout" or
        "stderr") from `offset` to its current end, as bytes."""
        data = []
        while True:
            request = migrator_pb2.ReadLogRequest(job=job, stream=stream, offset=offset, max_bytes=MAX_CHUNK)
            answer = self.call("Migrator.ReadLog", request, migrator_pb2.ReadLogResponse,
                               timeout_s=max(self.timeout_s, 15))
            data.append(answer.data)
            offset += len(answer.data)
            if not answer.data or offset >= answer.size:
                return b"".join(data)

    def migrate(self, job, node, timeout_s=900):
        """Migrator.Migrate: moves the job to `node` (0 = its home); MigrateResponse (`job` and
        `report`: from, to, freeze_ms, total_ms, bytes, mode). On failure (OMXError) the job
        runs on where it was, and the error says why."""
        request = migrator_pb2.MigrateRequest(job=job, target=node)
        return self.call("Migrator.Migrate", request, migrator_pb2.MigrateResponse, timeout_s=timeout_s)


class FSGateway(Client):
    """A node's file gateway, instance K (TCP 7710+K, RUN_DIR/fsgateway-K.sock): the node's
    exported tree (/ unless omx-fsgateway --export says otherwise; /proc, /sys, /dev and /mfs
    are not served). Paths are resolved beneath the export root ("/tmp/x" and "tmp/x" are the
    same file).

    Every operation runs as caller_uid/caller_gid/caller_groups (default: ours). Over TCP the
    gateway takes them from the request; on the Unix socket it takes the kernel's word, unless
    the caller is root. A refusal of the file system raises FileError (its `errno`, and the
    gateway's text naming the path)."""

    def __init__(self, endpoint, key=None, source_address=None, node_id=0, timeout_s=5.0,
                 caller_uid=None, caller_gid=None, caller_groups=None):
        super().__init__(endpoint, key=key, source_address=source_address, node_id=node_id, timeout_s=timeout_s)
        self.caller_uid = os.getuid() if caller_uid is None else caller_uid
        self.caller_gid = os.getgid() if caller_gid is None else caller_gid
        self.caller_groups = list(os.getgroups() if caller_groups is None else caller_groups)

    def fs(self, method, **fields):
        """Calls FSGateway.<method> with an FsRequest of `fields` (and our caller ids); returns
        the FsResponse, or raises FileError when its error_number is not 0."""
        request = fsgateway_pb2.FsRequest(caller_uid=self.caller_uid, caller_gid=self.caller_gid,
                                          caller_groups=self.caller_groups, **fields)
        name = f"FSGateway.{method}"
        response = self.call(name, request, fsgateway_pb2.FsResponse)
        if response.error_number != 0:
            raise FileError(name, self.peer, response.error_number, response.error)
        return response

    def stat(self, path):
        """FSGateway.Getattr: the Attr of `path` (lstat: a symlink is not followed)."""
        return self.fs("Getattr", path=path).attr

    def listdir(self, path):
        """FSGateway.Readdir: the DirEntry list (name, attr) of directory `path`, by name (asked
        for in pages: each names the offset of the next, 0 after the last)."""
        entries, offset, visited = [], 0, {0}
        while True:
            page = self.fs("Readdir", path=path, paged=True, offset=offset)
            entries.extend(page.entries)
            if page.next_offset == 0:
                return sorted(entries, key=lambda entry: entry.name)
            if page.next_offset in visited:
                raise FileError("FSGateway.Readdir", self.peer, _errno.EIO,
                                f"{path}: the pages came round to offset {page.next_offset} again")
            visited.add(page.next_offset)
            offset = page.next_offset

    def open(self, path, flags=O_RDONLY, mode=0o644):
        """FSGateway.Open (Linux open(2) flags; O_CREAT creates with `mode`): (handle, attr).
        Release the handle when done; the gateway closes one unused for 10 minutes."""
        response = self.fs("Open", path=path, flags=flags, mode=mode)
        return response.handle, response.attr

    def pread(self, handle, offset, size):
        """FSGateway.Read: up to `size` (at most 1 MiB) bytes at `offset`; b"" at the end."""
        return self.fs("Read", handle=handle, offset=offset, size=min(size, MAX_CHUNK)).data

    def pwrite(self, handle, offset, data):
        """FSGateway.Write: writes `data` (at most 1 MiB) at `offset`; the bytes written."""
        return self.fs("Write", handle=handle, offset=offset, data=bytes(data)).size

    def release(self, handle):
        """FSGateway.Release: closes the handle."""
        self.fs("Release", handle=handle)

    @contextlib.contextmanager
    def opened(self, path, flags=O_RDONLY, mode=0o644):
        """`with files.opened(path, flags) as handle:` Open, then Release however the block ends
        (a failure of the Release does not hide one of the block)."""
        handle, _ = self.open(path, flags, mode)
        try:
            yield handle
        except BaseException:
            try:
                self.release(handle)
            except OMXError:
                pass
            raise
        self.release(handle)

    def read_file(self, path):
        """The whole of file `path` (Open, Read in 1 MiB chunks until the end, Release)."""
        chunks = []
        offset = 0
        with self.opened(path, O_RDONLY) as handle:
            while True:
                chunk = self.pread(handle, offset, MAX_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                offset += len(chunk)
        return b"".join(chunks)

    def write_file(self, path, data, mode=0o644):
        """Makes file `path` hold `data` (Open with O_WRONLY|O_CREAT|O_TRUNC and `mode`, Write in
        1 MiB chunks, Release); returns the bytes written."""
        data = memoryview(bytes(data))
        offset = 0
        with self.opened(path, O_WRONLY | O_CREAT | O_TRUNC, mode) as handle:
            while offset < len(data):
                written = self.pwrite(handle, offset, data[offset:offset + MAX_CHUNK])
                if written <= 0:
                    raise FileError("FSGateway.Write", self.peer, _errno.EIO,
                                    f"{path}: write at offset {offset} wrote nothing")
                offset += written
        return offset

    def mkdir(self, path, mode=0o755):
        """FSGateway.Mkdir: creates directory `path`; its Attr."""
        return self.fs("Mkdir", path=path, mode=mode).attr

    def rmdir(self, path):
        """FSGateway.Rmdir: removes the empty directory `path`."""
        self.fs("Rmdir", path=path)

    def unlink(self, path):
        """FSGateway.Unlink: removes the file (or link) `path`."""
        self.fs("Unlink", path=path)

    def rename(self, path, new_path):
        """FSGateway.Rename: renames `path` to `new_path` on the same node."""
        self.fs("Rename", path=path, path2=new_path)


CLIENTS = {"discovery": Discovery, "balancer": Balancer, "migrator": Migrator, "fsgateway": FSGateway}


def _bindable(address):
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
        return True
    except OSError:
        return False


class Cluster:
    """The TCP side of a cluster: its map, its key and the address to connect from.

    `key` is the key file's path or the 32 key bytes. `source_address` must be an address of a
    node in the map (services refuse others); by default the first map address this host can
    bind, as a node's own address is."""

    def __init__(self, map_path, key, source_address=None, timeout_s=5.0):
        self.map_path = map_path
        self.nodes = parse_map(map_path)
        self.key = load_key(key) if isinstance(key, str) else bytes(key)
        self.timeout_s = timeout_s
        if source_address is None:
            candidates = [address for _, (main, aliases) in sorted(self.nodes.items()) for address in [main] + aliases]
            source_address = next((address for address in candidates if _bindable(address)), None)
        self.source_address = source_address

    def address(self, node):
        if node not in self.nodes:
            raise ValueError(f"{self.map_path}: node {node} is not in the map (nodes: "
                             f"{', '.join(str(n) for n in sorted(self.nodes))})")
        return self.nodes[node][0]

    def client(self, kind, node, instance=0, timeout_s=None):
        """A client (Discovery, Balancer, Migrator or FSGateway) of service `kind` on `node`."""
        cls = CLIENTS[kind]
        endpoint = f"tcp:{self.address(node)}:{service_port(kind, instance)}"
        return cls(endpoint, key=self.key, source_address=self.source_address, timeout_s=timeout_s or self.timeout_s)

    def discovery(self, node):
        return self.client("discovery", node)

    def balancer(self, node):
        return self.client("balancer", node)

    def migrator(self, node):
        return self.client("migrator", node)

    def migrator_for(self, job):
        """The Migrator of the job's home, which answers for the job wherever it runs."""
        return self.client("migrator", job_home(job))

    def fsgateway(self, node, instance=0):
        return self.client("fsgateway", node, instance)


# Command-line examples -----------------------------------------------------------------------

CLI_ERRORS = (OMXError, ValueError, OSError)


def add_connection_arguments(parser, service):
    """The connection options every example takes: TCP (--map --key --node --from-address) or
    --unix PATH, and --timeout."""
    group = parser.add_argument_group("connection")
    group.add_argument("--map", help="cluster map file (TCP)")
    group.add_argument("--key", help="cluster key file: 64 hex digits (TCP)")
    group.add_argument("--node", type=int, help=f"node id whose {service} to ask (TCP)")
    group.add_argument("--from-address",
                       help="local address to connect from, a node address in the map (default: the first "
                            "map address this host can bind)")
    group.add_argument("--unix", metavar="PATH", help=f"the {service}'s Unix socket instead of TCP (no key)")
    group.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer (default 5)")


def connect(args, parser, kind, instance=0, default_node=None):
    """The client the connection options of `args` name, for service `kind`."""
    if args.unix:
        return CLIENTS[kind](f"unix:{args.unix}", timeout_s=args.timeout)
    node = args.node if args.node is not None else default_node
    missing = [f"--{name}" for name, value in (("map", args.map), ("key", args.key), ("node", node)) if value is None]
    if missing:
        parser.error(f"TCP needs {', '.join(missing)} (or use --unix PATH)")
    cluster = Cluster(args.map, args.key, source_address=args.from_address, timeout_s=args.timeout)
    return cluster.client(kind, node, instance, timeout_s=args.timeout)


def fail(program, error):
    """Prints `program: error` on stderr; returns exit status 1. A reader of our output that
    went away (`| head`) ends us quietly."""
    if isinstance(error, BrokenPipeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    print(f"{program}: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    print("signing test vector OK, MAC", self_check())
