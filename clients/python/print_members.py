#!/usr/bin/python3
"""Prints the cluster membership as one node's Discovery sees it.

    print_members.py --map FILE --key FILE --node N [--from-address A]   # TCP, port 7701
    print_members.py --unix PATH                                         # e.g. RUN/discovery.sock
    print_members.py --self-test                                         # signing test vector

One line per member: `<id> <address> <state> <version>`. Exits 1 with the error on failure.
Run with Debian's /usr/bin/python3 (python3-protobuf) after ./generate.sh.
"""

import argparse
import ipaddress
import sys

import omx_client
from omx_client import Client, OMXError, discovery_pb2, load_key


def parse_map(path):
    """Returns {node_id: (address, [aliases])} from a cluster map.

    Lines are `ID ADDRESS RANGE` (RANGE nodes from ID, the last IPv4 byte counting up) or
    `ID ADDRESS ALIAS` / `ID ADDRESS 0` (another address of node ID); `#` starts a comment."""
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


def state_name(state):
    return discovery_pb2.MemberState.Name(state).lower()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print the OMX cluster membership (Discovery.Members).")
    parser.add_argument("--map", help="cluster map file (TCP)")
    parser.add_argument("--key", help="cluster key file: 64 hex digits (TCP)")
    parser.add_argument("--node", type=int, help="node id whose Discovery to ask (TCP, port 7701)")
    parser.add_argument("--from-address", help="local address to connect from (a node address in the map)")
    parser.add_argument("--unix", metavar="PATH", help="Discovery's Unix socket instead of TCP (no auth)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    parser.add_argument("--self-test", action="store_true", help="check the signing test vector and exit")
    args = parser.parse_args(argv)

    if args.self_test:
        try:
            mac = omx_client.self_check()
        except AssertionError as error:
            print(f"self-test failed: {error}", file=sys.stderr)
            return 1
        print(f"signing test vector OK (MAC {mac})")
        return 0

    try:
        if args.unix:
            client = Client(f"unix:{args.unix}", timeout_s=args.timeout)
        else:
            missing = [name for name in ("map", "key", "node") if getattr(args, name) is None]
            if missing:
                parser.error("TCP needs " + ", ".join(f"--{name}" for name in missing) + " (or use --unix PATH)")
            nodes = parse_map(args.map)
            if args.node not in nodes:
                raise ValueError(f"{args.map}: node {args.node} is not in the map (nodes: "
                                 f"{', '.join(str(n) for n in sorted(nodes))})")
            key = load_key(args.key)
            address = nodes[args.node][0]
            client = Client(f"tcp:{address}:{omx_client.DISCOVERY_PORT}", key=key,
                            source_address=args.from_address, timeout_s=args.timeout)
        with client:
            response = client.members()
    except (OMXError, ValueError, OSError) as error:
        print(f"print_members: {error}", file=sys.stderr)
        return 1

    for member in sorted(response.members, key=lambda m: m.node.id):
        print(f"{member.node.id} {member.node.address} {state_name(member.state)} {member.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
