"""Pulumi entry point. It lives beside Pulumi.yaml on purpose: the engine starts the dynamic providers with
the virtualenv of this directory (a `main:` in a subfolder breaks them); the code is in `infra/`."""

from infra.program import main

main()
