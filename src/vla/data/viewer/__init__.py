"""Episode viewer: one self-contained HTML page (frames, scrubber, plots, findings, provenance)."""

from vla.data.viewer.page import build_page, page_data, render

__all__ = ["build_page", "page_data", "render"]
