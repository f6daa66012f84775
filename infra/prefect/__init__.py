"""Prefect resources as Pulumi dynamic providers: `WorkPool` and `Deployment` (with cron schedules), and for
alerts a `NotificationBlock` (a webhook or Slack block document, its URL a secret) and an `Automation`.

Connection settings come from the stack config namespace `prefect` (`prefect:apiUrl`, secret
`prefect:apiKey` for Cloud, secret `prefect:authString` for a self-hosted server with basic auth), read in
the providers' `configure()`, with PREFECT_API_URL / PREFECT_API_KEY / PREFECT_API_AUTH_STRING as fallback.
"""

from .automation import Automation, AutomationProvider
from .client import (
    ConnectionSettings,
    PrefectApiError,
    PrefectClient,
    PrefectConfigError,
    RetryPolicy,
    deployment_ui_url,
    parse_cloud_api_url,
    ui_base_url,
    work_pool_ui_url,
)
from .deployment import Deployment, DeploymentProvider
from .notification_block import NotificationBlock, NotificationBlockProvider
from .schedules import CronScheduleSpec
from .validation import (
    CLOUD_ONLY_POOL_TYPES,
    WORK_POOL_TYPES,
    cron_problem,
    name_problem,
    timezone_problem,
    webhook_url_problem,
    work_pool_name_problem,
    work_pool_type_problem,
)
from .work_pool import WorkPool, WorkPoolProvider

__all__ = [
    "CLOUD_ONLY_POOL_TYPES",
    "WORK_POOL_TYPES",
    "Automation",
    "AutomationProvider",
    "ConnectionSettings",
    "CronScheduleSpec",
    "Deployment",
    "DeploymentProvider",
    "NotificationBlock",
    "NotificationBlockProvider",
    "PrefectApiError",
    "PrefectClient",
    "PrefectConfigError",
    "RetryPolicy",
    "WorkPool",
    "WorkPoolProvider",
    "cron_problem",
    "deployment_ui_url",
    "name_problem",
    "parse_cloud_api_url",
    "timezone_problem",
    "ui_base_url",
    "webhook_url_problem",
    "work_pool_name_problem",
    "work_pool_type_problem",
    "work_pool_ui_url",
]
