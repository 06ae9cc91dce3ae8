#!/usr/bin/python3
"""Prints the cluster's jobs like `omx mps` (Migrator.List with cluster set).

    mps.py --map FILE --key FILE --node N [--from-address A]
    mps.py --unix RUN/migrator.sock

Columns: JOB HOME WHERE PID STATE CMD. STATE is running, migrating, starting, "cantmove: why"
for a job that cannot move now, or how an ended job ended ("exit N", "signal N", "lost: why").
"""

import argparse
import sys
import unicodedata

from omx_client import CLI_ERRORS, add_connection_arguments, connect, fail, migrator_pb2


def row(job):
    ended = job.state == migrator_pb2.EXITED
    if ended:
        state = job.exit
    elif job.state == migrator_pb2.RUNNING and job.cantmove:
        state = f"cantmove: {job.cantmove}"
    else:
        state = migrator_pb2.JobState.Name(job.state).lower()
    command = (f"[{job.name}] " if job.name else "") + " ".join(job.argv)
    return [job.id, str(job.home), str(job.where), "-" if ended else str(job.pid), state, printable(command)]


def printable(text):
    """A job's words (in the wire form of file names) safe on a terminal line, as `omx mps`
    shows them: line breaks and tabs as spaces, other control characters as "?", bytes that
    are no UTF-8 as \\xNN."""
    def shown(char):
        if 0xEF80 <= ord(char) <= 0xEFFF:
            return f"\\x{ord(char) - 0xEF00:X}"
        if char in "\t\n\v\f\r\x85\u2028\u2029":
            return " "
        return "?" if unicodedata.category(char) == "Cc" else char
    return "".join(shown(char) for char in text)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print the cluster's jobs (Migrator.List).")
    add_connection_arguments(parser, "Migrator")
    args = parser.parse_args(argv)
    try:
        with connect(args, parser, "migrator") as migrator:
            answer = migrator.jobs(cluster=True)
    except CLI_ERRORS as error:
        return fail("mps", error)

    rows = [["JOB", "HOME", "WHERE", "PID", "STATE", "CMD"]] + [row(job) for job in answer.jobs]
    widths = [max(len(r[column]) for r in rows) for column in range(5)]
    for r in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(r, widths)) + "  " + r[5])
    if answer.unreachable:
        nodes = ", ".join(str(node) for node in answer.unreachable)
        print(f"mps: no answer from the Migrator of node {nodes}; their jobs may be missing", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
