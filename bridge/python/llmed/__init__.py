"""llmed — the PyTorch compute plane of the llmed registration framework.

Kept import-free on purpose: the TypeScript bridge imports this package in a fresh interpreter and only
then decides what it needs. The submodules are

- ``llmed.nn``        shared building blocks (conv blocks, warping, field resampling, the multiscale decoder)
- ``llmed.llm``       Hugging Face decoder layers loaded from a local checkpoint as a token encoder
- ``llmed.assemble``  ModelSpec (JSON from the TypeScript composer) → ``RegistrationModel`` and loss
- ``llmed.losses``    image similarity, label overlap and smoothness terms
"""

__version__ = "0.1.0"
