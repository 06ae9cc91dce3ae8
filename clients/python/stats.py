#!/usr/bin/python3
"""Prints one service's counters and gauges (its Stats call), one `name{labels} value` per line.

    stats.py --map FILE --key FILE --node N [--service migrator] [--instance K]   # TCP
    stats.py --unix RUN/migrator.sock --service migrator                         # Unix socket

Histograms print their count and sum. Exits 1 with the error on failure.
"""

import argparse

from omx_client import CLI_ERRORS, add_connection_arguments, connect, common_pb2, fail


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print an OMX service's metrics (Stats).")
    add_connection_arguments(parser, "service")
    parser.add_argument("--service", default="discovery", choices=["discovery", "balancer", "migrator", "fsgateway"])
    parser.add_argument("--instance", type=int, default=0, help="the FSGateway instance (TCP)")
    args = parser.parse_args(argv)
    try:
        with connect(args, parser, args.service, instance=args.instance) as client:
            stats = client.stats()
    except CLI_ERRORS as error:
        return fail("stats", error)
    for metric in stats.metrics:
        labels = ",".join(f'{label.name}="{label.value}"' for label in metric.labels)
        name = metric.name + (f"{{{labels}}}" if labels else "")
        if metric.kind == common_pb2.Metric.HISTOGRAM:
            print(f"{name} count={metric.count} sum={metric.value:g}")
        else:
            print(f"{name} {metric.value:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
