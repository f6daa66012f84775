"""Image: cold build time, code-only rebuild time and image size of our Dockerfile vs a naive one.

    uv run python -m benchmarks.image [--rounds 5]

Both are built with the classic builder through the Docker SDK (tests/support/docker_env.build_image), on the
same base image (BASE_IMAGE=python:3.12-slim, a local stand-in on these machines), alternating A B A B in every
round: ours cold, naive cold, ours code-only, naive code-only.
  ours:  the repository's Dockerfile, built from a clean copy of the checkout (with its .dockerignore).
  naive: benchmarks/naive.Dockerfile, `COPY . .` then `pip install` of the flow's runtime dependencies
         (prefect, prefect-docker, httpx, pinned to uv.lock's versions), from the same clean copy without
         our allow-list .dockerignore (a naive setup has none).
cold = `nocache=True`; code-only = a one-line change to flows/suggest_activity.py (a comment: a real content
change, since the builder's cache key ignores mtimes), then a normal (cached) build. Images are tagged
`bench-image-…` and removed after each round. Writes benchmarks/results/image.json.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from benchmarks._common import (
    REPO_ROOT,
    copy_project,
    fmt,
    md_table,
    median,
    record_run,
    summary,
    targets_table,
)

NAME = "image"
BASE_IMAGE = "python:3.12-slim"
NAIVE_DOCKERFILE = Path(__file__).with_name("naive.Dockerfile")
RUNTIME_PACKAGES = ("prefect", "prefect-docker", "httpx")
CHANGED_FILE = Path("flows") / "suggest_activity.py"
CODE_ONLY_TARGET = 0.20


def locked_versions() -> str:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    versions = {p["name"]: p["version"] for p in lock["package"] if p["name"] in RUNTIME_PACKAGES}
    return " ".join(f"{name}=={versions[name]}" for name in RUNTIME_PACKAGES)


def build(client: Any, context: Path, tag: str, dockerfile: str, args: dict[str, str], nocache: bool) -> dict:
    from tests.support.docker_env import build_image

    log: list[str] = []
    started = time.perf_counter()
    image_id = build_image(client, context, tag, args, dockerfile, nocache=nocache, log=log)
    seconds = time.perf_counter() - started
    image = client.images.get(image_id)
    steps = sum(1 for line in log if line.startswith("Step "))
    cached = sum(1 for line in log if "Using cache" in line)
    history = client.api.history(image_id)
    return {
        "seconds": seconds,
        "size_bytes": int(image.attrs["Size"]),
        "steps": steps,
        "cached_steps": cached,
        "largest_layers": [
            {"bytes": int(h["Size"]), "step": h["CreatedBy"][:90]}
            for h in sorted(history, key=lambda h: -int(h["Size"]))[:3]
        ],
    }


def remove_tags(client: Any, tags: list[str]) -> None:
    """Our tags only, newest first; an image another tag or container still uses stays (no force)."""
    import docker.errors

    for tag in tags:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(tag)


def run(rounds: int) -> dict[str, Any]:
    from tests.support.docker_env import docker_client, ensure_base_image

    client = docker_client(timeout=900)
    ensure_base_image(client, BASE_IMAGE)
    workdir = Path(tempfile.mkdtemp(prefix="bench-image-"))
    contexts = {"ours": copy_project(workdir / "ours"), "naive": copy_project(workdir / "naive")}
    (contexts["naive"] / ".dockerignore").unlink()
    shutil.copy(NAIVE_DOCKERFILE, contexts["naive"] / "naive.Dockerfile")
    variants = {
        "ours": ("Dockerfile", {"BASE_IMAGE": BASE_IMAGE}),
        "naive": ("naive.Dockerfile", {"BASE_IMAGE": BASE_IMAGE, "PACKAGES": locked_versions()}),
    }
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {v: {"cold": [], "code-only": []} for v in variants}
    try:
        for r in range(rounds):
            tags: list[str] = []
            for kind in ("cold", "code-only"):
                for variant, (dockerfile, args) in variants.items():  # A B A B …
                    context = contexts[variant]
                    if kind == "code-only":
                        with (context / CHANGED_FILE).open("a") as source:
                            source.write(f"# benchmark code change {r}\n")
                    tag = f"bench-image-{variant}:{kind}-{r}"
                    tags.append(tag)
                    sample = build(client, context, tag, dockerfile, args, nocache=kind == "cold")
                    samples[variant][kind].append(sample)
                    print(
                        f"round {r} {variant:<5} {kind:<9} {sample['seconds']:6.1f} s "
                        f"{sample['size_bytes'] / 1e6:6.1f} MB cached {sample['cached_steps']}/{sample['steps']}",
                        flush=True,
                    )
            remove_tags(client, list(reversed(tags)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def seconds(variant: str, kind: str) -> list[float]:
        return [s["seconds"] for s in samples[variant][kind]]

    code_ratios = [
        o / n for o, n in zip(seconds("ours", "code-only"), seconds("naive", "code-only"), strict=True)
    ]
    cold_ratios = [o / n for o, n in zip(seconds("ours", "cold"), seconds("naive", "cold"), strict=True)]
    size = {v: median([s["size_bytes"] for s in samples[v]["cold"]]) for v in variants}
    code_ratio = median(code_ratios)
    return {
        "rounds": rounds,
        "base_image": BASE_IMAGE,
        "naive_packages": locked_versions(),
        "seconds": {v: {k: summary(seconds(v, k), 2) for k in ("cold", "code-only")} for v in variants},
        "size_bytes": size,
        "ratio_code_only_ours_over_naive": summary(code_ratios, 4),
        "ratio_cold_ours_over_naive": summary(cold_ratios, 3),
        "samples": samples,
        "targets": [
            {
                "target": f"code-only rebuild <= {CODE_ONLY_TARGET:.0%} of the naive one's",
                "measured": f"{code_ratio:.1%} (median of per-round ratios)",
                "met": code_ratio <= CODE_ONLY_TARGET,
            },
            {
                "target": "image no larger than the naive one",
                "measured": f"{size['ours'] / 1e6:.1f} MB vs {size['naive'] / 1e6:.1f} MB "
                f"({(size['ours'] - size['naive']) / 1e6:+.1f} MB)",
                "met": size["ours"] <= size["naive"],
            },
        ],
    }


def report(results: dict[str, Any]) -> str:
    s = results["seconds"]
    rows = []
    for variant in ("ours", "naive"):
        rows.append(
            [
                variant,
                fmt(s[variant]["cold"]["median"], 1, " s"),
                f"{s[variant]['cold']['min']:.1f} to {s[variant]['cold']['max']:.1f} s",
                fmt(s[variant]["code-only"]["median"], 1, " s"),
                f"{s[variant]['code-only']['min']:.1f} to {s[variant]['code-only']['max']:.1f} s",
                fmt(results["size_bytes"][variant] / 1e6, 1, " MB"),
            ]
        )
    cr, co = results["ratio_cold_ours_over_naive"], results["ratio_code_only_ours_over_naive"]
    return "\n".join(
        [
            f"### Image (median of {results['rounds']} rounds, A B A B)",
            "",
            md_table(["Dockerfile", "cold build", "range", "code-only rebuild", "range", "image size"], rows),
            "",
            f"ratio ours / naive: cold {cr['median']:.2f} (rounds {cr['min']:.2f} to {cr['max']:.2f}), "
            f"code-only {co['median']:.3f} (rounds {co['min']:.3f} to {co['max']:.3f})",
            "",
            targets_table(results["targets"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results, path = record_run(NAME, lambda: run(args.rounds))
    print(report(results))
    print(f"\nraw results: {path}")


if __name__ == "__main__":
    main()
