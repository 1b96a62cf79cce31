"""Engine API server (FastAPI under /v1). Not built yet; the CLI is the interface for now."""
