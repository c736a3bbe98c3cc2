import sys

from supervisor_agent.main import main

sys.exit(main())
