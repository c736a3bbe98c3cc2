"""Concert V3 (Caisse-AP over IP): codec, TCP transport and the terminal driver."""

from tp_manager.concert_v3.messages import Contract, protocol_version
from tp_manager.concert_v3.terminal import ConcertV3Terminal

__all__ = ["ConcertV3Terminal", "Contract", "protocol_version"]
