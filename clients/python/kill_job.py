#!/usr/bin/python3
"""Sends a signal to a job wherever it runs (Migrator.Kill, like `omx kill`).

    kill_job.py --map FILE --key FILE [--from-address A] [--signal N] JOB   # asks the job's home
    kill_job.py --unix RUN/migrator.sock JOB
"""

import argparse
import signal
import sys

from omx_client import CLI_ERRORS, add_connection_arguments, connect, fail, job_home


def main(argv=None):
    parser = argparse.ArgumentParser(description="Signal a job (Migrator.Kill).")
    add_connection_arguments(parser, "Migrator (TCP default: the job's home)")
    parser.add_argument("--signal", "-s", default="TERM", help="a number or a name: TERM (default), KILL, STOP, ...")
    parser.add_argument("job", help="the job id, HOME.N")
    args = parser.parse_args(argv)
    name = args.signal.upper()
    try:
        number = int(name) if name.isdigit() else signal.Signals["SIG" + name.removeprefix("SIG")].value
    except KeyError:
        parser.error(f"no signal {args.signal!r}")

    try:
        with connect(args, parser, "migrator", default_node=job_home(args.job)) as migrator:
            job = migrator.kill(args.job, number)
    except CLI_ERRORS as error:
        return fail("kill_job", error)
    print(f"job {job.id}: sent signal {number} on node {job.where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
