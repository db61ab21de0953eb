"""HTML: one self-contained file (inline CSS, SVG and script) from reports/templates/."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from auditor.reporters import view

TEMPLATE = "report.html.j2"
SCRIPT = "report.js"


class HtmlReporter:
    """Renders report.html.j2. The page's Content-Security-Policy allows only its own inline
    script (by hash) and loads nothing from anywhere, so even a mistake in escaping could not
    run a target's script or call out of the reader's machine."""

    def render(self, document: dict[str, Any]) -> str:
        env = view.environment()
        script = env.get_template(SCRIPT).render()
        digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
        return env.get_template(TEMPLATE).render(
            view=view.build(document), script_hash=f"sha256-{digest}"
        )
