"""PDF: the report for paper and auditors, rendered by WeasyPrint from the shared templates."""

from __future__ import annotations

from typing import Any

from auditor.errors import ReportError
from auditor.reporters import view

TEMPLATE = "report.pdf.html.j2"


class PdfReporter:
    """Renders report.pdf.html.j2 (report.css + print.css) to PDF bytes."""

    def render(self, document: dict[str, Any]) -> bytes:
        import weasyprint  # heavy (Pango, fonts): imported only when a PDF is asked for

        html = view.environment().get_template(TEMPLATE).render(view=view.build(document))
        # The report is self-contained: no protocol is allowed, so nothing (an image or a
        # stylesheet, were one ever named) is read from disk or the network.
        fetcher = weasyprint.urls.URLFetcher(allowed_protocols=(), timeout=1)
        try:
            pdf = weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf()
        except Exception as exc:  # WeasyPrint has no exception root of its own
            raise ReportError(f"cannot render the PDF report: {type(exc).__name__}: {exc}") from exc
        if pdf is None:
            raise ReportError("cannot render the PDF report: WeasyPrint returned nothing")
        return bytes(pdf)
