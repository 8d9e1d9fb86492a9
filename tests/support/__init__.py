"""Helpers shared by the tests (fixtures live in conftest.py, which imports these).

- ``service``: the app over ASGI with its lifespan running, ``start_service``, workers.
- ``flows``: a request, its email, the guardian's grant and withdrawal, the check, over HTTP.
- ``guardian_client``: what a guardian's browser does: read the emailed link, post forms.
- ``credentials``: API keys, the development staff key and its JWKS, staff claims.
- ``dates``: birth dates and lapses relative to the ManualClock.
- ``problems``: the problem+json answer.
- ``cli``: the installed console script in a child process.
- ``webhooks``: a real receiver and an independent Standard Webhooks signature check.
- ``stored_data``: what the database holds, and where personal data is left.
- ``databases``: throwaway databases on the test cluster.
- ``browser``: the app on a real socket for Chromium.

A helper module never imports conftest or a test module (tests/test_layout.py checks it).
"""
