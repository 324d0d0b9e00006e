"""The relay's REST routes, one router per group; :func:`backend.relay.app.create_app` includes each."""
