"""wrk's report, read by the bench scripts: requests per second, latency percentiles, errors."""
import re


def parse(path):
    """(requests/s, {"50": "1.2ms", ...}, non-2xx responses) of the wrk output at `path`."""
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", text, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rps, latency, int(bad.group(1)) if bad else 0


def summary(path):
    """One table cell: "N req/s, p50 X, p99 Y, non-2xx Z"."""
    rps, latency, bad = parse(path)
    return f"{rps:,.0f} req/s, p50 {latency['50']}, p99 {latency['99']}, non-2xx {bad}"
