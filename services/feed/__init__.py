"""The live feed of a Streamlit server process: one WebSocket listener, per-session queues.

One :class:`~services.feed.feed.Feed` per server process (the app keeps it in ``st.cache_resource``):

- a listener thread (:mod:`.listener`) holds a websocket-client connection to the relay's
  ``/ws``, reconnecting with exponential backoff and full jitter, and
  subscribes to exactly the streams that live sessions want (:mod:`.sessions`);
- every received candle goes into a process-wide :class:`~.book.StreamBook` per
  stream (snapshot from REST + live updates: what figures are built from,
  once per update for all sessions; :mod:`.streams`) and into the
  :class:`~.queue.SessionQueue` of each session that wants that stream;
- a worker thread (:mod:`.rest`) does the REST work off the pages' reruns: snapshots of
  new or resynchronised streams, the symbol list, and (while a session
  shows the system page) the relay's stats once a second.

A ``seq`` gap, a reconnect or the relay's ``resync`` message marks the
stream's book for a fresh snapshot and the sessions that watch it; until
the snapshot is merged the book reports ``synced = False`` and figures keep
the last complete picture, so a chart never shows a hole.

Nothing here calls ``st.*``.
"""
