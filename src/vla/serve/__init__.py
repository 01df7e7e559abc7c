"""vla.serve: deployment. A websocket + msgpack policy server (openpi client wire format), a
numpy-only client, the asynchronous chunk executor with its watchdog, and the safety filter.

Nothing here imports a simulator or training code; torch is imported only by the server side.
"""
