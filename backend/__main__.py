"""``python -m backend {ingest,api,run,aggregate}``: see ``backend.cli``."""

from backend.cli import main

raise SystemExit(main())
