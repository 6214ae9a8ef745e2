"""Working memory in Redis: the adapter (:mod:`.store`), its Lua scripts (``lua/``, run by :mod:`.scripts`), the
staged spawn (:mod:`.staging`) and connecting (:mod:`.connection`)."""
