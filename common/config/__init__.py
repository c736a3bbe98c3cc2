"""The connector's configuration: desktop ``config.yml`` or kiosk ``config.txt``, one model.

Keys, defaults and rules are documented in docs/configuration.md.
"""

from common.config.errors import ConfigError, ConfigProblem
from common.config.loader import (
    DATA_DIR_ENV,
    DEMO_FLAVOURS,
    demo_config,
    load_config,
    load_config_arg,
)
from common.config.model import ConnectorConfig, ContractConfig

__all__ = [
    "DATA_DIR_ENV",
    "DEMO_FLAVOURS",
    "ConfigError",
    "ConfigProblem",
    "ConnectorConfig",
    "ContractConfig",
    "demo_config",
    "load_config",
    "load_config_arg",
]
