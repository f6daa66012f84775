"""What runs inside the worker container besides Prefect itself: its PID 1 (`worker.supervisor`, which ends the
flow runs in flight as Crashed when the container is stopped) and its healthcheck (`worker.healthcheck`).

Shipped in the flow image next to `flows/`. Standard library only: neither may import prefect.
"""
