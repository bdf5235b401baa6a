"""The domain: canonical events, identifiers, profiles, touchpoints and the pure merge engine."""
