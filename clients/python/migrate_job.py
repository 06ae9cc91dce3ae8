#!/usr/bin/python3
"""Moves a running job to another node (Migrator.Migrate, like `omx migrate`).

    migrate_job.py --map FILE --key FILE [--from-address A] JOB NODE     # asks the job's home
    migrate_job.py --unix RUN/migrator.sock JOB home

NODE is a node id or `home`. Prints where it went and what it took; on failure the job runs
on where it was and the error says why (exit 1).
"""

import argparse
import sys

from omx_client import CLI_ERRORS, add_connection_arguments, connect, fail, job_home


def main(argv=None):
    parser = argparse.ArgumentParser(description="Move a job to another node (Migrator.Migrate).")
    add_connection_arguments(parser, "Migrator (TCP default: the job's home)")
    parser.add_argument("job", help="the job id, HOME.N")
    parser.add_argument("target", metavar="NODE", help="a node id, or home")
    args = parser.parse_args(argv)
    if args.target != "home" and not args.target.isdigit():
        parser.error(f"NODE {args.target!r} is neither a node id nor home")
    target = 0 if args.target == "home" else int(args.target)

    try:
        # Over TCP a call about a job goes to its home, which knows where the job runs.
        with connect(args, parser, "migrator", default_node=job_home(args.job)) as migrator:
            answer = migrator.migrate(args.job, target)
    except CLI_ERRORS as error:
        return fail("migrate_job", error)
    report = answer.report
    print(f"job {answer.job.id}: node {getattr(report, 'from')} -> node {report.to}, pid {answer.job.pid}; "
          f"{report.bytes} bytes sent ({report.mode}), frozen {report.freeze_ms} ms, total {report.total_ms} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
