"""The explorer: a web console for one organisation of a consortium (issue 19).

``pilotchain explorer --network DIR --org ORG`` serves server-rendered pages (no Node.js toolchain:
HTML from :mod:`pilotchain.apps.explorer.pages`, a little vanilla CSS and JS shipped as package
data) that read the chain through the SDK as that organisation's client identity, against its
own node. The gateway redacts what the organisation may not read (a contract's ``@read``
permission), so the console shows only that; the SDK checks every block body and transaction
proof against its header before a page shows it. See ``docs/explorer.md``.

- :mod:`~pilotchain.apps.explorer.pages`   pure: SDK results in, HTML out (no I/O)
- :mod:`~pilotchain.apps.explorer.server`  the FastAPI app over one SDK client
- :mod:`~pilotchain.apps.explorer.cli`     ``pilotchain explorer``
"""
