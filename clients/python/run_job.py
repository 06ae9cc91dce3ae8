#!/usr/bin/python3
"""Starts a command as an OMX job (Migrator.Run, like `omx run`) and prints its id.

    run_job.py --map FILE --key FILE --node N [--from-address A] [--on M] -- CMD ARGS...
    run_job.py --unix RUN/migrator.sock [--wait] -- CMD ARGS...

The called node is the job's home; --on starts it on another node. Over TCP the job runs as
our uid and gid (the service trusts the key holder); on the Unix socket as whoever the kernel
says we are. With --wait: waits for the job to end, copies its stdout and stderr to ours and
exits with its status (128+N for signal N).
"""

import argparse
import sys

from omx_client import CLI_ERRORS, add_connection_arguments, connect, fail


def exit_status(outcome):
    """The status a shell shows for "exit N", "signal N" or "lost: why"."""
    kind, _, number = outcome.partition(" ")
    if not number.isdigit():
        return 1
    return 128 + int(number) if kind == "signal" else int(number)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Start a command as an OMX job (Migrator.Run).")
    add_connection_arguments(parser, "Migrator")
    parser.add_argument("--on", type=int, default=0, metavar="NODE", help="start it on NODE (default: the called node)")
    parser.add_argument("--name", default="", help="a name shown by mps")
    parser.add_argument("--stay", action="store_true", help="not moved automatically")
    parser.add_argument("--lock", action="store_true", help="never moved")
    parser.add_argument("--cwd", help="its working directory (default: ours)")
    parser.add_argument("--wait", action="store_true", help="wait for it, print its output, exit with its status")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given: run_job.py [OPTIONS] -- CMD ARGS...")

    try:
        with connect(args, parser, "migrator") as migrator:
            job = migrator.run(command, node=args.on, name=args.name, cwd=args.cwd, stay=args.stay, lock=args.lock)
            print(job.id, flush=True)
            if not args.wait:
                return 0
            ended = migrator.wait(job.id)
            sys.stdout.buffer.write(migrator.read_log(job.id, "stdout"))
            sys.stdout.flush()
            sys.stderr.buffer.write(migrator.read_log(job.id, "stderr"))
    except CLI_ERRORS as error:
        return fail("run_job", error)
    if ended.exit.startswith("lost"):
        print(f"run_job: job {job.id} {ended.exit}", file=sys.stderr)
    return exit_status(ended.exit)


if __name__ == "__main__":
    sys.exit(main())
