import sys

from common.lean import leave_out_console_libraries

leave_out_console_libraries()  # before the imports below bring structlog in

from supervisor_agent.main import main  # noqa: E402

sys.exit(main())
