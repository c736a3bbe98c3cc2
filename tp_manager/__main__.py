import sys

from tp_manager.main import main

sys.exit(main())
