"""The passes over tile IR, one module each, with a ``run(kernel) -> bool`` (True when it changed
something).

They are registered by name, with the thread-level passes, in ``tiledsl.stages`` (``PASSES``),
whose runner verifies the IR after each, translates errors, prints and caches.
"""
