"""Medians over runs of bench_client.py --json: `python summarize.py run*.json [--out merged.json]` prints a markdown
table (median [min-max], ratio of the medians in Xoscar-C's favour)."""
import json
import statistics
import sys

from bench_client import ROWS


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else None
    if out in args:
        args.remove(out)
    runs = [json.load(open(p)) for p in args]
    keys = [k for _, k, _ in ROWS] + ["sync_call_rtt_p50_us", "sync_call_rtt_p99_us", "tells_sent_per_s"]
    merged = {"runs": runs, "median": {}}
    print("| workload (Python caller, actor in another process) | Xoscar-C (xoscar_c) | Python Xoscar | ratio |")
    print("| --- | --- | --- | --- |")
    for label, key, better in ROWS + [("call RTT p50 (µs), blocking xoscar_c.sync", "sync_call_rtt_p50_us", "lower")]:
        c = [r["xoscar_c"][key] for r in runs]
        p = [r["python_xoscar"][key] for r in runs if r.get("python_xoscar") and key in r["python_xoscar"]]
        mc = statistics.median(c)
        cell_c = f"{mc:.1f} [{min(c):.1f}–{max(c):.1f}]"
        if p:
            mp = statistics.median(p)
            ratio = mp / mc if better == "lower" else mc / mp
            print(f"| {label} | {cell_c} | {mp:.1f} [{min(p):.1f}–{max(p):.1f}] | {ratio:.1f}× |")
            merged["median"][key] = {"xoscar_c": mc, "python_xoscar": mp, "ratio": ratio}
        else:
            print(f"| {label} | {cell_c} | – | |")
            merged["median"][key] = {"xoscar_c": mc}
    if out:
        json.dump(merged, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
