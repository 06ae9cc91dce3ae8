#!/usr/bin/python3
"""Another node's files through its gateway (FSGateway.*), like a tiny /mfs/NODE.

    mfs.py --map FILE --key FILE --node N [--from-address A] [--instance K] COMMAND ...
    mfs.py --unix RUN/fsgateway-0.sock COMMAND ...

Commands: `ls PATH`, `stat PATH`, `cat PATH`, `put LOCAL PATH` (a local file, `-` for stdin),
`get PATH LOCAL` (`-` for stdout), `mkdir PATH`, `rm PATH`, `rmdir PATH`. PATH is on the node,
beneath its export root (/ by default). Over TCP the gateway acts with our uid, gid and groups.
Names are bytes, as on the disk: those that are no UTF-8 are given and printed as they are.
"""

import argparse
import os
import stat as stat_module
import sys

from omx_client import CLI_ERRORS, add_connection_arguments, connect, fail, name_bytes, wire_name


def describe(name, attr):
    """One `ls -l`-like line for wire name `name`, as bytes (the name's own)."""
    mode = f"{stat_module.filemode(attr.mode)} {attr.uid:>5} {attr.gid:>5} {attr.size:>10} "
    return mode.encode() + name_bytes(name) + b"\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Files of a node through its FSGateway.")
    add_connection_arguments(parser, "FSGateway")
    parser.add_argument("--instance", type=int, default=0, help="gateway instance K (TCP port 7710+K; default 0)")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("ls", "stat", "cat", "mkdir", "rm", "rmdir"):
        commands.add_parser(name).add_argument("path")
    put = commands.add_parser("put", help="write LOCAL (- = stdin) to PATH on the node")
    put.add_argument("local")
    put.add_argument("path")
    get = commands.add_parser("get", help="copy PATH on the node to LOCAL (- = stdout)")
    get.add_argument("path")
    get.add_argument("local")
    args = parser.parse_args(argv)
    # Python reads arguments with undecodable bytes kept (surrogateescape): back to the bytes.
    path = wire_name(os.fsencode(args.path))

    try:
        with connect(args, parser, "fsgateway", instance=args.instance) as files:
            if args.command == "ls":
                for entry in files.listdir(path):
                    sys.stdout.buffer.write(describe(entry.name, entry.attr))
            elif args.command == "stat":
                sys.stdout.buffer.write(describe(path, files.stat(path)))
            elif args.command in ("cat", "get"):
                data = files.read_file(path)
                if args.command == "cat" or args.local == "-":
                    sys.stdout.buffer.write(data)
                else:
                    with open(args.local, "wb") as handle:
                        handle.write(data)
            elif args.command == "put":
                if args.local == "-":
                    data = sys.stdin.buffer.read()
                else:
                    with open(args.local, "rb") as handle:
                        data = handle.read()
                files.write_file(path, data)
            elif args.command == "mkdir":
                files.mkdir(path)
            elif args.command == "rm":
                files.unlink(path)
            elif args.command == "rmdir":
                files.rmdir(path)
    except CLI_ERRORS as error:
        return fail("mfs", error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
