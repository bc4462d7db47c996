"""pytest setup for the plugin folders' own tests (``plugins/<id>/tests/test_*.py``).

Puts llmed (bridge/python), the bridge's test helpers (bridge/python/tests) and every plugin's python
package root on ``sys.path``, so a plugin's test imports its module by name (``import llmed_mse``) exactly
as the assembler does after putting the plugin's ``python`` folder on the path. A new plugin needs no
change here.
"""

from __future__ import annotations

import sys
from pathlib import Path

PLUGINS_DIR = Path(__file__).resolve().parent
REPO_ROOT = PLUGINS_DIR.parent
for p in (REPO_ROOT / "bridge" / "python", REPO_ROOT / "bridge" / "python" / "tests", *sorted(PLUGINS_DIR.glob("*/python"))):
    if p.is_dir() and str(p) not in sys.path:
        sys.path.insert(0, str(p))
