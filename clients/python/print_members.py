#!/usr/bin/python3
"""Prints the cluster membership as one node's Discovery sees it.

    print_members.py --map FILE --key FILE --node N [--from-address A]   # TCP, port 7701
    print_members.py --unix PATH                                         # e.g. RUN/discovery.sock
    print_members.py --self-test                                         # signing test vector

One line per member: `<id> <address> <state> <version>`. Exits 1 with the error on failure.
Run with Debian's /usr/bin/python3 (python3-protobuf) after ./generate.sh.
"""

import argparse
import sys

import omx_client
from omx_client import CLI_ERRORS, add_connection_arguments, connect, discovery_pb2, fail


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print the OMX cluster membership (Discovery.Members).")
    add_connection_arguments(parser, "Discovery")
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
        with connect(args, parser, "discovery") as discovery:
            response = discovery.members()
    except CLI_ERRORS as error:
        return fail("print_members", error)

    for member in sorted(response.members, key=lambda m: m.node.id):
        state = discovery_pb2.MemberState.Name(member.state).lower()
        print(f"{member.node.id} {member.node.address} {state} {member.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
