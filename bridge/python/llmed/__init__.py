"""llmed — the PyTorch compute plane of the llmed registration framework.

Kept import-free on purpose: the TypeScript bridge imports this package in a fresh interpreter and only
then decides what it needs. The submodules are

- ``llmed.nn``        shared building blocks (conv blocks, initialisation, token norms, warping, field resampling)
- ``llmed.llm``       Hugging Face decoder layers loaded from a local checkpoint as a token encoder
- ``llmed.assemble``  ModelSpec (JSON from the TypeScript composer) → ``RegistrationModel`` and loss
- ``llmed.losses``    what every loss plugin shares: scale weights and the fixed image per field's grid
- ``llmed.plugin_cases`` the per-plugin test cases (``plugins/<id>/tests/cases.json``) decoder

Each named encoder, adapter, decoder and loss lives in its plugin folder (``plugins/<id>/python``).
"""

__version__ = "0.1.0"
