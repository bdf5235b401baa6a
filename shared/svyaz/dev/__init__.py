"""Development tooling, never deployed: the local service (``svyaz serve``), the emulators, the
demo journeys and the deploy-archive builder."""
