"""Shared state behind the gateway's features: the response cache's stores (the database by
default) and the rate limiters' counters (in process by default); with ``TUNEPIPE_REDIS_URL``
both live in Redis, so every process and host shares them."""
