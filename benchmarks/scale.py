"""Scale: create, refresh (read) and destroy 1, 10 and 50 deployments through the providers.

    uv run python -m benchmarks.scale [--rounds 5] [--sizes 1 10 50]

The providers run in the gRPC host the Pulumi engine starts, against a local `prefect server`, through a
recording proxy that counts requests. Each round does every size once, in a rotating order (1 10 50, then
10 50 1, …) so that drift in the machine's load spreads over all sizes; reported numbers are medians over
rounds. Operations are serial (the engine would run independent resources in parallel, so these wall times
are an upper bound for `pulumi up`). Every deployment has the program's inputs (09:00 cron schedule
included) under a unique name, in one work pool. Writes benchmarks/results/scale.json and scale.svg.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks._common import (
    RESULTS_DIR,
    fmt,
    isolate_prefect_home,
    md_table,
    median,
    prefect_server,
    record_run,
    summary,
)
from benchmarks.provider_cost import declared_inputs, program_config

NAME = "scale"
PHASES = ("create", "refresh", "destroy")


def phase_result(proxy: Any, started: float) -> dict[str, Any]:
    """Wall time and requests of one phase; answers the server could not give (5xx, e.g. 503 from a busy SQLite
    database, which the client retries) are counted apart, as they are not requests the provider chose to make."""
    seconds = time.perf_counter() - started
    requests = proxy.requests
    errors = sum(1 for r in requests if r.status is None or r.status >= 500)
    return {"seconds": seconds, "requests": len(requests), "server_errors": errors}


def one_size(deps: Any, proxy: Any, base: dict[str, Any], prefix: str, n: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    created: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    proxy.clear_requests()
    started = time.perf_counter()
    for i in range(n):
        inputs = deps.checked({**base, "name": f"{prefix}-{i}"})
        id_, outputs = deps.create(inputs, name=f"d{i}")
        created.append((id_, inputs, outputs))
    result["create"] = phase_result(proxy, started)

    proxy.clear_requests()
    started = time.perf_counter()
    for i, (id_, inputs, outputs) in enumerate(created):
        read = deps.read(id_, outputs, inputs=inputs, name=f"d{i}")
        assert not read.gone
    result["refresh"] = phase_result(proxy, started)

    proxy.clear_requests()
    started = time.perf_counter()
    for i, (id_, _inputs, outputs) in enumerate(created):
        deps.delete(id_, outputs, name=f"d{i}")
    result["destroy"] = phase_result(proxy, started)
    return result


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares y = a + b·x and its R²."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    ss_tot = sum((y - mean_y) ** 2 for y in ys)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return {
        "intercept_s": intercept,
        "seconds_per_deployment": slope,
        "r2": 1 - ss_res / ss_tot if ss_tot else 1.0,
    }


def run(rounds: int, sizes: list[int]) -> dict[str, Any]:
    from infra.prefect import DeploymentProvider, WorkPoolProvider
    from tests.support.fault_proxy import FaultProxy
    from tests.support.provider_host import ProviderHost, host_env

    samples: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
    with (
        prefect_server("scale") as server,
        FaultProxy(server.api_url) as proxy,
        ProviderHost(env=host_env()) as host,
    ):
        host.configure({"prefect:apiUrl": proxy.api_url})
        pool_decl, dep_decl = declared_inputs(program_config(proxy.api_url, "bench-scale", "bench-scale"))
        pools = host.resource(WorkPoolProvider(), "prefect:WorkPool")
        deps = host.resource(DeploymentProvider(), "prefect:Deployment")
        pool_id, pool_out = pools.create(pools.checked(pool_decl), name="pool")
        try:
            one_size(deps, proxy, dep_decl, "bench-scale-warmup", 3)  # imports, server caches: not reported
            for r in range(rounds):
                order = sizes[r % len(sizes) :] + sizes[: r % len(sizes)]
                for n in order:
                    samples[n].append(one_size(deps, proxy, dep_decl, f"bench-scale-r{r}-n{n}", n))
        finally:
            pools.delete(pool_id, pool_out, name="pool")
    table: dict[str, Any] = {}
    for n in sizes:
        table[str(n)] = {}
        for phase in PHASES:
            seconds = [s[phase]["seconds"] for s in samples[n]]
            requests = [s[phase]["requests"] for s in samples[n]]
            errors = [s[phase]["server_errors"] for s in samples[n]]
            table[str(n)][phase] = {
                "seconds": summary(seconds),
                "seconds_per_deployment": round(median(seconds) / n, 4),
                "requests": summary(requests, 0),
                "server_errors_retried": sum(errors),
                # What the provider chose to send, per deployment, in every round (retries of 5xx excluded).
                "requests_per_deployment": sorted(
                    {(r - e) / n for r, e in zip(requests, errors, strict=True)}
                ),
            }
    fits = {
        phase: linear_fit(
            [float(n) for n in sizes], [table[str(n)][phase]["seconds"]["median"] for n in sizes]
        )
        for phase in PHASES
    }
    return {"rounds": rounds, "sizes": sizes, "table": table, "linear_fit": fits}


# ------------------------------------------------------------------------------------------------ plot


COLORS = {"create": "#1f77b4", "refresh": "#2ca02c", "destroy": "#d62728"}


def svg_plot(results: dict[str, Any]) -> str:
    """A small hand-rolled SVG, two panels: median total time vs number of deployments (straight lines = linear
    growth; dashed = least-squares fit), and time per deployment (flat lines = constant cost)."""
    sizes = results["sizes"]
    table = results["table"]
    width, height = 680, 560
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    totals = {p: [(n, table[str(n)][p]["seconds"]) for n in sizes] for p in PHASES}
    per_one = {
        p: [
            (n, {k: table[str(n)][p]["seconds"][k] * 1000 / n for k in ("median", "min", "max")})
            for n in sizes
        ]
        for p in PHASES
    }
    parts += _panel(
        "Total wall time (serial), median of rounds",
        "seconds",
        totals,
        sizes,
        box=(60, 30, 470, 250),
        fits=results["linear_fit"],
    )
    parts += _panel(
        "Time per deployment", "ms per deployment", per_one, sizes, box=(60, 335, 470, 520), fits=None
    )
    legend_x = 490
    for index, phase in enumerate(PHASES):
        fit = results["linear_fit"][phase]
        y = 50 + 40 * index
        parts.append(f'<rect x="{legend_x}" y="{y - 10}" width="12" height="12" fill="{COLORS[phase]}"/>')
        parts.append(f'<text x="{legend_x + 18}" y="{y}">{phase}</text>')
        parts.append(
            f'<text x="{legend_x + 18}" y="{y + 15}" font-size="10" fill="#555">'
            f"fit {fit['seconds_per_deployment'] * 1000:.0f} ms/deployment, R² {fit['r2']:.3f}</text>"
        )
    for index, line in enumerate(
        (
            "dots: median; bars: min to max",
            "dashed: least-squares fit",
            f"{results['rounds']} rounds per size",
        )
    ):
        parts.append(f'<text x="{legend_x}" y="{180 + 15 * index}" font-size="10" fill="#555">{line}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _panel(
    title: str,
    y_label: str,
    series: dict[str, list[tuple[int, dict[str, float]]]],
    sizes: list[int],
    box: tuple[float, float, float, float],
    fits: dict[str, dict[str, float]] | None,
) -> list[str]:
    left, top, right, bottom = box
    max_x = max(sizes)
    max_y = max(point["max"] for points in series.values() for _, point in points) * 1.1

    def px(x: float) -> float:
        return left + (right - left) * x / max_x

    def py(y: float) -> float:
        return bottom - (bottom - top) * y / max_y

    parts = [
        f'<text x="{(left + right) / 2}" y="{top - 10}" text-anchor="middle" font-size="13">{title}</text>',
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{bottom}" x2="{left}" y2="{top}" stroke="black"/>',
        f'<text x="{(left + right) / 2}" y="{bottom + 32}" text-anchor="middle">deployments</text>',
        f'<text x="16" y="{(top + bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {(top + bottom) / 2})">{y_label}</text>',
    ]
    step = _nice_step(max_y)
    tick = 0.0
    while tick <= max_y:
        parts.append(f'<line x1="{left}" y1="{py(tick)}" x2="{right}" y2="{py(tick)}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{py(tick) + 4}" text-anchor="end">{tick:g}</text>')
        tick += step
    for n in sizes:
        parts.append(f'<line x1="{px(n)}" y1="{bottom}" x2="{px(n)}" y2="{bottom + 5}" stroke="black"/>')
        parts.append(f'<text x="{px(n)}" y="{bottom + 17}" text-anchor="middle">{n}</text>')
    for phase, points in series.items():
        color = COLORS[phase]
        if fits is not None:
            fit = fits[phase]
            parts.append(
                f'<line x1="{px(0)}" y1="{py(max(0.0, fit["intercept_s"]))}" x2="{px(max_x)}" '
                f'y2="{py(fit["intercept_s"] + fit["seconds_per_deployment"] * max_x)}" stroke="{color}" '
                'stroke-dasharray="5 4" stroke-width="1"/>'
            )
        path = " ".join(f"{px(n):.1f},{py(p['median']):.1f}" for n, p in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for n, p in points:
            parts.append(
                f'<line x1="{px(n)}" y1="{py(p["min"])}" x2="{px(n)}" y2="{py(p["max"])}" stroke="{color}"/>'
            )
            parts.append(f'<circle cx="{px(n)}" cy="{py(p["median"])}" r="3.5" fill="{color}"/>')
    return parts


def _nice_step(span: float) -> float:
    raw = span / 6
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 0.1
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def ascii_chart(results: dict[str, Any], width: int = 50) -> str:
    """Bars of the median total time per size and phase, scaled to the largest."""
    sizes = results["sizes"]
    table = results["table"]
    top = max(table[str(n)][p]["seconds"]["median"] for n in sizes for p in PHASES)
    lines = []
    for phase in PHASES:
        for n in sizes:
            value = table[str(n)][phase]["seconds"]["median"]
            bar = "#" * max(1, round(width * value / top))
            lines.append(f"{phase:<8} n={n:<3} {bar} {value:.2f} s")
    return "\n".join(lines)


def constant_requests(results: dict[str, Any], phase: str) -> bool:
    """The same number of requests per deployment at every size and in every round (5xx retries excluded)."""
    table = results["table"]
    return len({v for n in results["sizes"] for v in table[str(n)][phase]["requests_per_deployment"]}) == 1


def report(results: dict[str, Any]) -> str:
    rows = []
    for n in results["sizes"]:
        for phase in PHASES:
            cell = results["table"][str(n)][phase]
            rows.append(
                [
                    n,
                    phase,
                    fmt(cell["seconds"]["median"], 2, " s"),
                    fmt(cell["seconds_per_deployment"] * 1000, 0, " ms"),
                    int(cell["requests"]["median"]),
                    cell["server_errors_retried"],
                    " / ".join(f"{v:g}" for v in cell["requests_per_deployment"]),
                ]
            )
    lines = [
        f"### Scale (median of {results['rounds']} rounds, serial)",
        "",
        md_table(
            [
                "deployments",
                "phase",
                "total time",
                "per deployment",
                "requests (median)",
                "5xx retried (all rounds)",
                "requests / deployment, every round (5xx retries excluded)",
            ],
            rows,
        ),
        "",
        md_table(
            ["phase", "fit: time = a + b·n", "R²", "requests / deployment constant?"],
            [
                [
                    phase,
                    f"{fit['intercept_s']:.3f} s + {fit['seconds_per_deployment'] * 1000:.0f} ms · n",
                    f"{fit['r2']:.4f}",
                    "yes" if constant_requests(results, phase) else "**no**",
                ]
                for phase, fit in results["linear_fit"].items()
            ],
        ),
        "",
        "```",
        ascii_chart(results),
        "```",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    args = parser.parse_args()
    isolate_prefect_home()
    results, path = record_run(NAME, lambda: run(args.rounds, sorted(args.sizes)))
    svg = RESULTS_DIR / "scale.svg"
    svg.write_text(svg_plot(results))
    print(report(results))
    print(f"\nraw results: {path}\nplot: {svg}")


if __name__ == "__main__":
    main()
