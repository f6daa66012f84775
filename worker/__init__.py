"""What runs inside the worker container besides Prefect itself: its healthcheck (`worker.healthcheck`).

Shipped in the flow image next to `flows/`. Standard library only: it must not import prefect.
"""
